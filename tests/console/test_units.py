"""The console's own logic without a browser: pasted YAML and its lines, CSRF, and the batching of live
updates (10,000 changes reach the page as a few batches)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest
from aiohttp.test_utils import make_mocked_request

from caspian.v1 import common_pb2, hub_pb2
from services.console import pasted
from services.console.live import Coalescer, LiveStream
from services.console.metrics import ConsoleMetrics
from services.console.security import CsrfGuard

NOW = datetime(2023, 6, 1, tzinfo=UTC)


def test_a_bad_field_is_reported_with_its_line_and_the_clis_message():
    text = "name: a\nimage: busybox\nruntime: 10m\n---\nname: b\nimage: busybox\ncpu: lots\n"
    items = pasted.read_items(text)
    with pytest.raises(pasted.PastedSpecError) as caught:
        pasted.app_wrappers(items, NOW)
    error = caught.value.error
    assert (error.line, error.field) == (7, "cpu")
    assert error.message.startswith("pasted: item 1 (b): cpu: ")


def test_a_yaml_syntax_error_names_its_line():
    with pytest.raises(pasted.PastedSpecError) as caught:
        pasted.read_items("name: a\nimage: [busybox\nruntime: 10m\n")
    assert caught.value.error.line in (2, 3, 4)
    assert "not valid YAML" in caught.value.error.message


def test_items_lists_and_json_map_like_caspianctl():
    listed = pasted.read_items("items:\n  - {name: a, image: x}\n  - {name: b, image: y}\n")
    assert [aw.name for aw in pasted.app_wrappers(listed, NOW)] == ["a", "b"]
    assert [item.line for item in listed] == [2, 3]
    as_json = pasted.read_items('{"name": "c", "image": "z", "runtime": "5m"}')
    [aw] = pasted.app_wrappers(as_json, NOW)
    assert aw.template.expected_runtime.seconds == 300
    assert pasted.relative_times(pasted.read_items("name: d\ndeadline: 6h\n"))
    with pytest.raises(pasted.PastedSpecError, match="no documents"):
        pasted.read_items("# nothing\n")
    with pytest.raises(pasted.PastedSpecError) as unknown:
        pasted.app_wrappers(pasted.read_items("name: e\n\nimagee: x\n"), NOW)
    assert unknown.value.error.line == 3  # an unknown key names its own line


def _post(headers: dict[str, str]):
    return make_mocked_request("POST", "/submit", headers={"Host": "console.local:8080", **headers})


def test_csrf_needs_the_same_origin_and_the_callers_token():
    guard = CsrfGuard(b"k" * 32)
    token = guard.token_for("team-a-token")
    assert token != guard.token_for("team-b-token") and token != guard.token_for("")
    same = {"Origin": "http://console.local:8080"}
    assert guard.check(_post(same), token, "team-a-token") is None
    assert "another origin" in guard.check(_post({"Origin": "http://evil.example"}), token, "team-a-token")
    assert "no origin" in guard.check(_post({}), token, "team-a-token")
    assert guard.check(_post({"Referer": "http://console.local:8080/submit"}), token, "team-a-token") is None
    assert "CSRF" in guard.check(_post(same), token, "team-b-token")
    assert "CSRF" in guard.check(_post(same), "", "team-a-token")


def test_the_coalescer_keeps_the_newest_state_of_each_job_once():
    pending = Coalescer()
    for i in range(10_000):
        pending.job(f"aw-{i % 500}", {"id": f"aw-{i % 500}", "n": i})
    pending.job("aw-7", None)
    updated, removed = pending.take_jobs(10_000)
    assert len(updated) == 499 and removed == ["aw-7"]
    assert {u["id"]: u["n"] for u in updated}["aw-499"] == 9_999


class FakeGateway:
    """The two watches at the gRPC boundary: a replay of `jobs` ADDED, a bookmark, then a burst of changes."""

    def __init__(self, jobs: int, burst: int):
        self.jobs, self.burst = jobs, burst

    def _event(self, kind: int, i: int, revision: int):
        aw = common_pb2.AppWrapper(id=f"aw-{i}", tenant="t", revision=revision)
        aw.status.phase = common_pb2.APP_WRAPPER_PHASE_PENDING
        return hub_pb2.WatchAppWrappersResponse(type=kind, app_wrapper=aw, revision=revision)

    async def watch(self, token, since_revision=0):
        for i in range(self.jobs):
            yield self._event(hub_pb2.WATCH_EVENT_TYPE_ADDED, i, i + 1)
        yield hub_pb2.WatchAppWrappersResponse(type=hub_pb2.WATCH_EVENT_TYPE_BOOKMARK, revision=self.jobs)
        for n in range(self.burst):
            yield self._event(hub_pb2.WATCH_EVENT_TYPE_MODIFIED, n % self.jobs, self.jobs + n + 1)
        await asyncio.Event().wait()

    async def watch_intensities(self, zones):
        await asyncio.Event().wait()
        yield

    async def stats(self, token):
        return hub_pb2.GetStatsResponse()


class Collector:
    def __init__(self):
        self.events: list[tuple[str, dict]] = []

    async def write(self, chunk: bytes) -> None:
        text = chunk.decode()
        if text.startswith("event: "):
            head, data = text.split("\n")[:2]
            self.events.append((head.removeprefix("event: "), json.loads(data.removeprefix("data: "))))


async def test_a_burst_of_ten_thousand_changes_reaches_the_page_as_a_few_batches():
    metrics = ConsoleMetrics.create()
    stream = LiveStream(
        FakeGateway(1000, 10_000),
        "",
        batch_seconds=0.1,
        batch_max_jobs=2000,
        clock_seconds=60,
        metrics=metrics,
    )
    out = Collector()
    runner = asyncio.ensure_future(stream.run(out))
    try:
        deadline = asyncio.get_running_loop().time() + 10
        while stream.pending.changes_seen < 11_000 or stream.pending.jobs:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    batches = [data for kind, data in out.events if kind == "jobs"]
    sent = sum(len(b["updated"]) for b in batches)
    # 11,000 changes to 1,000 jobs: each batch holds a job at most once, and far fewer updates are sent.
    assert all(len({u["id"] for u in b["updated"]}) == len(b["updated"]) for b in batches)
    assert len(batches) <= 12 and sent <= 6000, (len(batches), sent)
    assert ("synced", {}) in out.events
    sample = metrics.registry.get_sample_value
    assert sample("console_live_changes_total") == 11_000
    assert sample("console_live_job_updates_sent_total") == sent
    assert sample("console_live_batches_sent_total") == len(batches)
    assert sample("console_live_streams") == 0  # the stream ended


def test_the_forecast_error_band_is_drawn_only_where_the_carbon_service_gives_one():
    from caspian.v1 import carbon_pb2
    from services.console.fleet import ZoneCarbon, zone_chart

    def forecast(spreads):
        response = carbon_pb2.GetForecastResponse(zone="KR", error_model="dacf-empirical")
        for i, spread in enumerate(spreads):
            point = response.points.add(zone="KR", gco2_per_kwh=400 + i)
            point.time.seconds = 1_685_577_600 + 900 * i
            point.duration.seconds = 900
            response.relative_spread.append(spread)
        return response

    with_band = zone_chart(ZoneCarbon("KR", forecast=forecast([0.0, 0.1, 0.2])), None)
    assert with_band.count('<polygon class="band"') == 1 and "error band" in with_band
    assert "dacf-empirical" in with_band
    without = zone_chart(ZoneCarbon("KR", forecast=forecast([0.0, 0.0, 0.0])), None)
    assert "band" not in without
    blind = zone_chart(ZoneCarbon("KR", error="reading: UNAVAILABLE"), None)
    assert "no data from the API" in blind and "UNAVAILABLE" in blind
