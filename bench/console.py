"""`make bench-console`: the console's timeline measured in a real headless Chromium (Performance API).

A stack with the console (launcher Stack, ephemeral ports, simulated clock at 1x so that nothing moves on its own
during the measurement) gets 5,000 AppWrappers, a third required on each cluster (three zones), all starting in
an hour; one scheduling cycle places them. Then, in the browser:

- page weight: the HTML, CSS and script the timeline page loads (navigation and resource entries, decoded bytes;
  the live event stream excluded), goal < 300 KB;
- render: navigation start to the first draw holding all 5,000 jobs (the hub's replay over server-sent events
  included; five fresh loads, the goal on their median), and one full redraw of 5,000 jobs up to the next painted frame, goal < 1 s;
- update: 1,000 changes applied through the page's own batch handler and drawn up to the next painted frame,
  goal < 200 ms (ten updates, the goal on their median; every sample is in the result); and 1,000 real
  cancellations through the hub, with the batches the console pushed for them.

Writes bench/results/console.json with the machine's load average.
"""

from __future__ import annotations

import json
import os
import pathlib
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta

from caspian.v1 import common_pb2, hub_pb2, hub_pb2_grpc
from services.common.timeconv import from_timestamp, to_duration, to_timestamp
from services.launcher.stack import Stack, StackConfig
from tests.console.browser import start_browser

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
JOBS = 5000
UPDATES = 1000
# Fresh page loads measured; the machine is shared, so one load says little.
LOADS = 5
CLUSTERS = ("carbon-kr", "carbon-jp", "carbon-cn")
HUB_ENV = {
    # Slots of 15 minutes over a day; no cycle on its own during the run (1x clock, long period and debounce).
    "CASPIAN_HUB_SCHEDULE_PERIOD_SECONDS": "86400",
    "CASPIAN_HUB_DEBOUNCE_SECONDS": "86400",
    "CASPIAN_HUB_DEBOUNCE_MAX_SECONDS": "86400",
    "CASPIAN_HUB_SLOT_SECONDS": "900",
    "CASPIAN_HUB_HORIZON_SLOTS": "96",
    "CASPIAN_HUB_SOLVE_TIME_LIMIT_SECONDS": "20",
    "CASPIAN_HUB_LOG_LEVEL": "WARNING",
}

DRAW_AND_PAINT = """
const done = arguments[arguments.length - 1];
const t = window.__timeline, t0 = performance.now();
%s
requestAnimationFrame(() => setTimeout(() => done(performance.now() - t0), 0));
"""


def submit_jobs(stub, now: datetime) -> list[str]:
    items = []
    for i in range(JOBS):
        aw = common_pb2.AppWrapper(name=f"bench-{i}", tenant=f"team-{i % 4}", labels={"batch": str(i % 10)})
        aw.template.image = "busybox"
        aw.template.resources.cpu_millis = 50
        aw.template.resources.memory_bytes = 64 << 20
        aw.template.expected_runtime.CopyFrom(to_duration(1800 + 60 * (i % 60)))
        aw.earliest_start.CopyFrom(to_timestamp(now + timedelta(hours=1)))
        aw.deadline.CopyFrom(to_timestamp(now + timedelta(hours=22)))
        aw.required_clusters.append(CLUSTERS[i % 3])
        items.append(hub_pb2.SubmitAppWrapperRequest(app_wrapper=aw, request_id=f"bench-console-{i}"))
    batches = [hub_pb2.SubmitAppWrappersRequest(items=items[i : i + 500]) for i in range(0, JOBS, 500)]
    response = stub.SubmitAppWrappers(iter(batches), timeout=120)
    assert response.rejected == 0, response.results[:3]
    return [r.id for r in response.results]


def page_weight(driver) -> dict:
    entries = driver.execute_script(
        "const nav = performance.getEntriesByType('navigation')[0];"
        "const res = performance.getEntriesByType('resource').filter(e => !e.name.includes('/events'));"
        "return [nav, ...res].map(e => ({name: e.name, bytes: e.decodedBodySize, transfer: e.transferSize}));"
    )
    return {
        "bytes": sum(e["bytes"] for e in entries),
        "parts": {e["name"].rsplit("/", 1)[-1] or "timeline": e["bytes"] for e in entries},
    }


def measure(stack: Stack, profile: pathlib.Path) -> dict:
    with stack.hub_channel() as channel:
        stub = hub_pb2_grpc.HubServiceStub(channel)
        now = from_timestamp(stub.GetStats(hub_pb2.GetStatsRequest(), timeout=10).now)
        ids = submit_jobs(stub, now)
        cycle = stub.TriggerSchedule(hub_pb2.TriggerScheduleRequest(), timeout=300).summary
        listed = stub.ListAppWrappers(hub_pb2.ListAppWrappersRequest(page_size=1), timeout=30)
        driver = start_browser(profile)
        try:
            url = stack.console_url + "timeline"
            loads = []
            for _ in range(LOADS):
                driver.get(url)
                deadline = time.monotonic() + 60
                while driver.execute_script("return window.__timeline.stats.firstFullDraw") is None:
                    assert time.monotonic() < deadline, "the timeline never finished its first draw"
                    time.sleep(0.05)
                loads.append(
                    driver.execute_script(
                        "const n = performance.getEntriesByType('navigation')[0], s = window.__timeline.stats;"
                        "return {html_received: n.responseEnd, dom_content_loaded: n.domContentLoadedEventEnd,"
                        " first_jobs_event: s.firstBatchAt, synced_event: s.syncedAt, drawn: s.firstFullDraw};"
                    )
                )
            drawn = driver.execute_script(
                "return [window.__timeline.jobs.size, window.__timeline.stats.shown]"
            )
            weight = page_weight(driver)
            redraws = [
                driver.execute_async_script(DRAW_AND_PAINT % "t.applyJobs({updated: [], removed: []});")
                for _ in range(5)
            ]
            # 1,000 changes: existing jobs moved to "running" and back, through the page's batch handler.
            updates = []
            for phase in ("running", "scheduled") * 5:
                script = (
                    f"const changed = Array.from(t.jobs.values()).slice(0, {UPDATES})"
                    f".map(j => ({{...j, phase: '{phase}'}}));"
                    "t.applyJobs({updated: changed, removed: []});"
                )
                updates.append(driver.execute_async_script(DRAW_AND_PAINT % script))
            # 1,000 real cancellations through the hub: what the console pushes, and how long each batch draws.
            before = driver.execute_script("return window.__timeline.stats.batches.length")
            draws_before = driver.execute_script("return window.__timeline.stats.drawMs.length")
            futures = [
                stub.CancelAppWrapper.future(
                    hub_pb2.CancelAppWrapperRequest(id=i, reason="bench"), timeout=60
                )
                for i in ids[:UPDATES]
            ]
            started = time.monotonic()
            for future in futures:
                future.result()
            cancelled = "return Array.from(window.__timeline.jobs.values()).filter(j => j.phase === 'cancelled').length"
            while driver.execute_script(cancelled) < UPDATES:
                assert time.monotonic() - started < 60, "the cancellations never reached the page"
                time.sleep(0.02)
            seen_after_s = time.monotonic() - started
            live_batches = driver.execute_script(f"return window.__timeline.stats.batches.slice({before})")
            live_draws = driver.execute_script(f"return window.__timeline.stats.drawMs.slice({draws_before})")
            severe = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        finally:
            driver.quit()
    return {
        "jobs": JOBS,
        "jobs_in_page": drawn[0],
        "bars_drawn": drawn[1],
        "zones": 3,
        "cycle": {
            "planned": cycle.planned,
            "unplaced": cycle.unplaced,
            "fallback": cycle.fallback,
            "duration_s": round(cycle.duration.seconds + cycle.duration.nanos / 1e9, 2),
        },
        "hub_total": listed.total_size,
        "page_weight_bytes": weight["bytes"],
        "page_weight_parts": weight["parts"],
        "first_full_draw_ms_from_navigation": [round(load["drawn"], 1) for load in loads],
        "first_draw_steps_ms_from_navigation": [
            {k: round(v or 0, 1) for k, v in load.items()} for load in loads
        ],
        "redraw_5000_ms": [round(v, 1) for v in redraws],
        "update_1000_ms": [round(v, 1) for v in updates],
        "live_cancel_1000": {
            "seen_in_page_after_s": round(seen_after_s, 2),
            # [changes in the batch, ms to apply it]; the page then draws once per frame.
            "batches": [[n, round(ms, 1)] for n, ms in live_batches],
            "draws_ms": [round(ms, 1) for ms in live_draws],
        },
        "browser_errors": severe,
    }


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = pathlib.Path(tmp)
        config = StackConfig(
            workdir=workdir / "stack",
            clock_speedup=1.0,
            env={"hub": HUB_ENV, "console": {"CASPIAN_CONSOLE_LOG_LEVEL": "WARNING"}},
            console=True,
        )
        stack = Stack(config).start()
        try:
            result = measure(stack, workdir / "profile")
        finally:
            stack.stop()
    goals = {
        "render_5000_under_1s": statistics.median(result["first_full_draw_ms_from_navigation"]) < 1000
        and max(result["redraw_5000_ms"]) < 1000,
        "update_1000_under_200ms": statistics.median(result["update_1000_ms"]) < 200,
        "page_weight_under_300KB": result["page_weight_bytes"] < 300 * 1024,
    }
    result.update(
        goals=goals,
        machine={
            "cpus": os.cpu_count(),
            "load_average_1m_at_end": round(os.getloadavg()[0], 2),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "browser": "Debian chromium, headless",
        },
        measured_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "console.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
