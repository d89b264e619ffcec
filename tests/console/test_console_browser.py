"""The console as a person uses it: a real headless Chromium against a make-run-style stack on ephemeral ports,
with bearer tokens on the hub (one admin, two tenants). One stack and one browser for the whole module.

Screenshots of every page at 1280 and 390 px go to a pytest temporary directory (printed at the end), or to
CASPIAN_CONSOLE_SCREENSHOTS when set (a CI artifact directory); with
CASPIAN_CONSOLE_DOCS_IMG=1 the timeline at 1280 px is also written to docs/img/ for the README.
"""

from __future__ import annotations

import io
import json
import os
import pathlib
import time
from datetime import timedelta

import httpx
import pytest
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By

from caspian.v1 import common_pb2, hub_pb2, hub_pb2_grpc
from caspianctl.__main__ import main as caspianctl
from caspianctl.render import grams
from services.common.timeconv import from_timestamp, to_duration, to_timestamp
from services.launcher.stack import ROOT
from tests.console.browser import available, start_browser
from tests.console.stack import TOKENS, start_stack

pytestmark = pytest.mark.skipif(not available(), reason="chromium and chromedriver are not installed")

TERMINAL_NAMES = {
    "APP_WRAPPER_PHASE_SUCCEEDED",
    "APP_WRAPPER_PHASE_FAILED",
    "APP_WRAPPER_PHASE_CANCELLED",
    "APP_WRAPPER_PHASE_UNSCHEDULABLE",
}


def auth(tenant: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {TOKENS[tenant]}"),)


def poll(check, timeout: float = 20.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {check}")
        time.sleep(interval)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    running = start_stack(tmp_path_factory.mktemp("console-stack"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def console(stack):
    return stack.console_url.rstrip("/")


@pytest.fixture(scope="module")
def hub(stack):
    with stack.hub_channel() as channel:
        yield hub_pb2_grpc.HubServiceStub(channel)


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    chosen = os.environ.get("CASPIAN_CONSOLE_SCREENSHOTS")
    directory = pathlib.Path(chosen) if chosen else tmp_path_factory.mktemp("console-screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    yield directory
    print(f"\nconsole screenshots: {directory}")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    driver = start_browser(tmp_path_factory.mktemp("chromium-profile"))
    yield driver
    driver.quit()


@pytest.fixture(autouse=True)
def no_script_errors(browser):
    browser.get_log("browser")
    yield
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    # Pages answered with 4xx on purpose (a refused YAML, another tenant's job) are not script errors.
    severe = [e for e in severe if "the server responded with a status of 4" not in e["message"]]
    assert severe == []


def sign_in(browser, console: str, tenant: str) -> None:
    browser.get(f"{console}/login")
    browser.find_element(By.ID, "token").send_keys(TOKENS[tenant])
    browser.find_element(By.ID, "login-button").click()
    poll(lambda: browser.current_url.endswith("/timeline"))
    wait_synced(browser)


def wait_synced(browser) -> None:
    poll(lambda: browser.find_element(By.ID, "live-status").text == "live")


def hub_now(hub):
    return from_timestamp(hub.GetStats(hub_pb2.GetStatsRequest(), timeout=10, metadata=auth("admin")).now)


def job(hub, name: str, tenant: str, cluster: str = "", runtime_min: int = 20, deadline_h: int = 3):
    now = hub_now(hub)
    aw = common_pb2.AppWrapper(name=name, tenant=tenant, labels={"suite": "console"})
    aw.template.image = "busybox"
    aw.template.command.append("true")
    aw.template.resources.cpu_millis = 500
    aw.template.resources.memory_bytes = 256 << 20
    aw.template.expected_runtime.CopyFrom(to_duration(runtime_min * 60))
    aw.deadline.CopyFrom(to_timestamp(now + timedelta(hours=deadline_h)))
    if cluster:
        aw.required_clusters.append(cluster)
    response = hub.SubmitAppWrapper(
        hub_pb2.SubmitAppWrapperRequest(app_wrapper=aw, request_id=f"console-test-{name}"),
        timeout=10,
        metadata=auth(tenant),
    )
    return response.app_wrapper.id


def bars(browser) -> dict[str, str]:
    """Job id -> the lane ("" for not placed) of every bar in the timeline's last draw."""
    return browser.execute_script("return window.__timeline.lanes();")


def click_and_load(browser, element_id: str) -> None:
    """Click a submitting button and wait for the next page to replace this one."""
    page = browser.find_element(By.TAG_NAME, "html")
    browser.find_element(By.ID, element_id).click()
    poll(lambda: _stale(page))
    poll(lambda: browser.execute_script("return document.readyState") == "complete")


def _stale(element) -> bool:
    try:
        _ = element.tag_name
    except (StaleElementReferenceException, WebDriverException):
        # Chromium reports a node of the page being replaced either way.
        return True
    return False


def screenshot(browser, shots: pathlib.Path, name: str, reload: bool = False) -> None:
    """The page at 1280 and 390 px; `reload` loads it again at each width (a GET page that sizes itself)."""
    for width in (1280, 390):
        browser.set_window_size(width, 1000)
        if reload:
            browser.refresh()
            if browser.find_elements(By.ID, "live-status"):
                wait_synced(browser)
        time.sleep(0.3)  # one frame for the layout to follow the new width
        browser.save_screenshot(str(shots / f"{name}-{width}.png"))
    browser.set_window_size(1280, 900)
    if reload:
        browser.refresh()


def test_timeline_shows_submitted_jobs_in_their_lanes(stack, console, hub, browser, shots):
    ids = {
        job(hub, f"lane-{cluster}-{i}", "team-a", cluster): cluster
        for cluster in ("carbon-kr", "carbon-cn", "carbon-jp")
        for i in range(3)
    }
    sign_in(browser, console, "admin")
    drawn = poll(lambda: (b := bars(browser)) and all(i in b for i in ids) and b)
    for app_wrapper_id in ids:
        placed = hub.GetAppWrapper(
            hub_pb2.GetAppWrapperRequest(id=app_wrapper_id), timeout=10, metadata=auth("admin")
        ).app_wrapper
        # The lane is the cluster the hub names, or "not placed" ("") while the plan has none.
        assert drawn[app_wrapper_id] in ("", placed.status.target_cluster)
    # Once the plan has placed them, every bar sits in its required cluster's lane.
    poll(lambda: all(bars(browser)[i] == cluster for i, cluster in ids.items()), timeout=30)
    labels = browser.execute_script(
        "return Array.from(document.querySelectorAll('text.lane-label')).map(t => t.textContent);"
    )
    assert set(labels) == {"carbon-cn", "carbon-jp", "carbon-kr", "not placed"}
    screenshot(browser, shots, "timeline", reload=True)
    wait_synced(browser)
    poll(lambda: all(bars(browser).get(i) == cluster for i, cluster in ids.items()))
    # A click on a bar opens that job's page (the view held still: "follow now" off).
    browser.find_element(By.ID, "follow").click()
    target = next(iter(ids))
    x, y = browser.execute_script("return window.__timeline.centreOf(arguments[0]);", target)
    svg = browser.find_element(By.ID, "timeline")
    ActionChains(browser).move_to_element_with_offset(
        svg, x - svg.size["width"] / 2, y - svg.size["height"] / 2
    ).click().perform()
    assert poll(lambda: browser.find_elements(By.ID, "job-id"))[0].text == target
    browser.get(f"{console}/timeline")
    wait_synced(browser)
    poll(lambda: all(i in bars(browser) for i in ids))
    if os.environ.get("CASPIAN_CONSOLE_DOCS_IMG") == "1":
        (ROOT / "docs" / "img").mkdir(exist_ok=True)
        browser.save_screenshot(str(ROOT / "docs" / "img" / "console-timeline.png"))


def test_a_job_submitted_through_the_api_appears_within_two_seconds(console, hub, browser):
    browser.get(f"{console}/timeline")
    wait_synced(browser)
    started = time.monotonic()
    app_wrapper_id = job(hub, "live-arrival", "team-a")
    poll(lambda: app_wrapper_id in bars(browser), timeout=5, interval=0.02)
    elapsed = time.monotonic() - started
    assert elapsed < 2.0, f"drawn {elapsed:.2f} s after the submission"


def test_filters_narrow_the_timeline(console, hub, browser):
    job(hub, "filter-b", "team-b")
    browser.get(f"{console}/timeline")
    wait_synced(browser)
    poll(
        lambda: "team-b" in [o.text for o in browser.find_elements(By.CSS_SELECTOR, "#filter-tenant option")]
    )
    browser.find_element(By.CSS_SELECTOR, "#filter-tenant option[value='team-b']").click()
    tenants = lambda: browser.execute_script(  # noqa: E731
        "const t = window.__timeline; return Object.keys(t.lanes()).map(id => t.jobs.get(id).tenant);"
    )
    assert set(poll(lambda: (seen := tenants()) and set(seen) == {"team-b"} and seen)) == {"team-b"}


def test_preview_and_submit_from_the_form(console, hub, browser, shots):
    sign_in(browser, console, "team-a")
    browser.get(f"{console}/submit")
    spec = (
        'name: form-job\ntenant: team-a\nimage: busybox\ncommand: ["true"]\ncpu: 250m\nmemory: 128Mi\n'
        "runtime: 15m\ndeadline: 4h\nlabels: {from: console}\n"
    )
    area = browser.find_element(By.ID, "spec")
    area.clear()
    area.send_keys(spec)
    click_and_load(browser, "preview-button")
    preview = poll(lambda: browser.find_elements(By.ID, "preview"))[0]
    cells = [c.text for c in preview.find_elements(By.CSS_SELECTOR, "tbody td")]
    assert cells[0] == "form-job" and cells[1] == "yes" and cells[2].startswith("carbon-")
    screenshot(browser, shots, "submit-preview")
    click_and_load(browser, "submit-button")
    submitted = poll(lambda: browser.find_elements(By.CSS_SELECTOR, "#submitted tbody td a"))
    app_wrapper_id = submitted[0].text
    stored = hub.GetAppWrapper(
        hub_pb2.GetAppWrapperRequest(id=app_wrapper_id), timeout=10, metadata=auth("admin")
    ).app_wrapper
    assert stored.name == "form-job" and stored.tenant == "team-a" and stored.labels["from"] == "console"
    # The job page of what was just submitted.
    submitted[0].click()
    assert poll(lambda: browser.find_elements(By.ID, "job-id"))[0].text == app_wrapper_id
    history = poll(lambda: browser.find_elements(By.CSS_SELECTOR, "#history tbody tr"))
    assert history, "the job's phase history is empty"
    screenshot(browser, shots, "job")


def test_an_uploaded_file_is_previewed(console, browser, tmp_path):
    spec = tmp_path / "upload.yaml"
    spec.write_text(
        "name: uploaded-job\ntenant: team-a\nimage: busybox\ncpu: 100m\nmemory: 64Mi\nruntime: 5m\ndeadline: 3h\n"
    )
    browser.get(f"{console}/submit")
    browser.find_element(By.ID, "upload").send_keys(str(spec))
    click_and_load(browser, "preview-button")
    cells = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#preview tbody td")]
    assert cells[:2] == ["uploaded-job", "yes"], browser.find_element(By.TAG_NAME, "main").text[:500]


def test_bad_yaml_shows_its_line(console, browser):
    browser.get(f"{console}/submit")
    area = browser.find_element(By.ID, "spec")
    area.clear()
    area.send_keys("name: broken\nimage: busybox\nruntime: 10m\ncpu: plenty\n")
    click_and_load(browser, "preview-button")
    error = poll(lambda: browser.find_elements(By.ID, "spec-error"))[0].text
    assert "cpu" in error and "(line 4)" in error
    assert browser.find_element(By.CSS_SELECTOR, "#source li.bad").get_attribute("data-line") == "4"
    area = browser.find_element(By.ID, "spec")
    area.clear()
    area.send_keys("name: broken\nimage: [busybox\nruntime: 10m\n")
    click_and_load(browser, "preview-button")
    error = poll(lambda: browser.find_elements(By.ID, "spec-error"))[0].text
    assert "not valid YAML" in error and "line " in error


def test_a_tenant_never_sees_another_tenants_job(console, hub, browser):
    theirs = job(hub, "team-a-private", "team-a")
    mine = job(hub, "team-b-own", "team-b")
    sign_in(browser, console, "team-b")
    poll(lambda: mine in bars(browser))
    tenants = browser.execute_script("return Array.from(window.__timeline.jobs.values()).map(j => j.tenant);")
    assert set(tenants) == {"team-b"}
    assert theirs not in bars(browser)
    browser.get(f"{console}/jobs/{theirs}")
    assert "NOT_FOUND" in browser.find_element(By.TAG_NAME, "main").text
    browser.get(f"{console}/savings")
    assert "team-a" not in browser.find_element(By.ID, "tenants").text


def test_submit_needs_a_token_and_a_same_origin_form(console, browser):
    browser.delete_all_cookies()
    # This hub checks tokens: without one, pages say so and point to the sign-in page.
    browser.get(f"{console}/timeline")
    assert "UNAUTHENTICATED" in browser.find_element(By.TAG_NAME, "main").text
    assert browser.find_element(By.CSS_SELECTOR, "main a[href='/login']")
    browser.get(f"{console}/submit")
    assert browser.find_element(By.ID, "submit-button").get_attribute("disabled") is not None
    assert browser.find_element(By.ID, "submit-off").is_displayed()
    form = {"spec": "name: x\nimage: busybox\n", "action": "submit", "csrf": "forged"}
    headers = {"Authorization": f"Bearer {TOKENS['team-a']}"}
    cross = httpx.post(f"{console}/submit", data=form, headers={**headers, "Origin": "http://evil.example"})
    assert cross.status_code == 403 and "another origin" in cross.text
    forged = httpx.post(f"{console}/submit", data=form, headers={**headers, "Origin": console})
    assert forged.status_code == 403 and "CSRF" in forged.text


def _items(listed) -> list:
    return listed if isinstance(listed, list) else listed.get("app_wrappers", [])


def _table(browser, rows: str) -> dict[str, str]:
    """A page's two-column table, heading -> value."""
    return {
        row.find_element(By.TAG_NAME, "th").text: row.find_element(By.TAG_NAME, "td").text
        for row in browser.find_elements(By.CSS_SELECTOR, rows)
    }


def _ctl_json(*args: str):
    out = io.StringIO()
    assert (
        caspianctl(["--token", TOKENS["admin"], "-o", "json", *args], stdout=out, stderr=io.StringIO()) == 0
    )
    return json.loads(out.getvalue())


def test_the_console_and_caspianctl_agree(stack, console, hub, browser, shots):
    # Let every job of this module finish, so the list stands still. A finished run is accounted by a later
    # cycle once its intensity is known, so carbon figures may still move: each page is read between two
    # caspianctl reads, and compared only when nothing changed in between.
    hub_flag = ["--hub", stack.hub_address]

    def settled():
        items = _items(_ctl_json(*hub_flag, "list"))
        if not items or any(i["status"]["phase"] not in TERMINAL_NAMES for i in items):
            return None
        time.sleep(1.0)
        return items if _items(_ctl_json(*hub_flag, "list")) == items else None

    def between_reads(read_ctl, read_page):
        def once():
            before = read_ctl()
            shown = read_page()
            return (before, shown) if read_ctl() == before else None

        return poll(once, timeout=120, interval=0.5)

    items = poll(settled, timeout=120, interval=0.5)
    sign_in(browser, console, "admin")
    api = httpx.get(f"{console}/api/jobs", headers={"Authorization": f"Bearer {TOKENS['admin']}"}).json()
    assert {(j["id"], j["phase"], j["cluster"]) for j in api} == {
        (
            i["id"],
            i["status"]["phase"].removeprefix("APP_WRAPPER_PHASE_").lower(),
            i["status"].get("target_cluster", ""),
        )
        for i in items
    }

    def ctl_stats():
        return {k: v for k, v in _ctl_json(*hub_flag, "stats").items() if k not in ("now", "last_cycle")}

    def savings_totals():
        browser.get(f"{console}/savings")
        return _table(browser, "#totals tr")

    stats, totals = between_reads(ctl_stats, savings_totals)
    assert totals["Emitted"] == grams(stats.get("emitted_gco2", 0.0))
    assert totals["Counterfactual"] == grams(stats.get("counterfactual_gco2", 0.0))
    assert totals["Avoided"].startswith(grams(stats.get("avoided_gco2", 0.0)))
    screenshot(browser, shots, "savings", reload=True)
    finished_id = next(i["id"] for i in items if i["status"].get("finished_at"))

    def ctl_carbon():
        return _ctl_json(*hub_flag, "get", finished_id)["status"].get("carbon", {})

    def page_carbon():
        browser.get(f"{console}/jobs/{finished_id}")
        return _table(browser, "#carbon tr")

    expected, carbon = between_reads(ctl_carbon, page_carbon)
    assert carbon["Actual"] == grams(expected.get("actual_gco2", 0.0))
    assert carbon["Counterfactual (carbon-agnostic)"] == grams(expected.get("counterfactual_gco2", 0.0))
    clusters = _ctl_json(*hub_flag, "clusters", "list")
    clusters = clusters if isinstance(clusters, list) else clusters.get("clusters", [])
    browser.get(f"{console}/")
    rows = browser.find_elements(By.CSS_SELECTOR, "#clusters tbody tr")
    shown = {tuple(c.text for c in r.find_elements(By.TAG_NAME, "td")[:2]) for r in rows}
    assert shown == {(c["name"], c["zone"]) for c in clusters}
    screenshot(browser, shots, "fleet", reload=True)
