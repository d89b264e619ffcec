"""WatchIntensities: many subscribers, a stalled one that blocks nobody, and clean ends on shutdown."""

import asyncio

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from prometheus_client import CollectorRegistry

from caspian.v1 import carbon_pb2, carbon_pb2_grpc
from services.carbon import settings as carbon_settings
from services.carbon.intensity import IntensityService
from services.carbon.metrics import CarbonMetrics
from services.carbon.providers import build_providers
from services.carbon.watch import Subscription, Update, WatchHub
from services.common.clock import ManualClock
from tests.carbon.support import T0, eventually

FAST = {"CASPIAN_CARBON_WATCH_MIN_INTERVAL_SECONDS": "0.01", "CASPIAN_CARBON_WATCH_QUEUE_SIZE": "4"}


def watch_request(zones, seconds):
    return carbon_pb2.WatchIntensitiesRequest(zones=zones, interval=Duration(nanos=int(seconds * 1e9)))


async def test_hundred_subscribers_one_stalled(start_carbon):
    run = await start_carbon(FAST)
    channels = [grpc.aio.insecure_channel(run.server.address) for _ in range(4)]
    stubs = [carbon_pb2_grpc.CarbonServiceStub(c) for c in channels]
    received = [0] * 99
    zones_seen: list[set[str]] = [set() for _ in range(99)]

    async def reader(i):
        async for update in stubs[i % 4].WatchIntensities(watch_request(["KR", "CN"], 0.2), timeout=60):
            received[i] += 1
            zones_seen[i].add(update.point.zone)
            assert update.source.provider in {"replay", "synthetic"}

    # The stalled subscriber opens its stream and never reads from it; a small HTTP/2 window on its own
    # channel makes the server's writes to it block soon.
    small_window = grpc.aio.insecure_channel(
        run.server.address, options=[("grpc.http2.lookahead_bytes", 1024), ("grpc.http2.bdp_probe", 0)]
    )
    channels.append(small_window)
    stalled = carbon_pb2_grpc.CarbonServiceStub(small_window).WatchIntensities(
        watch_request(["KR", "CN", "JP-TK"], 0.01), timeout=60
    )
    await stalled.initial_metadata()
    readers = [asyncio.create_task(reader(i)) for i in range(99)]
    try:
        await eventually(lambda: run.metric("carbon_watch_subscribers") == 100)
        # Every active subscriber gets the first values and then three more ticks, while one is stalled.
        await eventually(lambda: min(received) >= 8)
        assert all(seen == {"KR", "CN"} for seen in zones_seen)
        # The stalled stream's server-side queue stays bounded: old updates are dropped, not piled up.
        stalled_sub = next(s for s in run.server.watch._subscriptions if s.interval == 0.01)
        await eventually(lambda: stalled_sub.dropped > 0)
        assert len(stalled_sub) <= 4
        assert run.metric("carbon_watch_dropped_updates_total") >= stalled_sub.dropped
        # ...and the others keep receiving while it drops.
        floor = min(received)
        await eventually(lambda: min(received) >= floor + 4)
    finally:
        stalled.cancel()
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        for channel in channels:
            await channel.close()
    await eventually(lambda: run.metric("carbon_watch_subscribers") == 0)


async def test_streams_end_cleanly_on_shutdown(start_carbon):
    run = await start_carbon(FAST)
    calls = [run.stub.WatchIntensities(watch_request(["KR"], 0.05), timeout=60) for _ in range(3)]
    for call in calls:
        first = await call.read()
        assert first.point.zone == "KR"
    await run.server.stop(grace=10)
    for call in calls:
        while await call.read() is not grpc.aio.EOF:
            pass
        # OK, not CANCELLED or UNAVAILABLE: the stream was ended, not cut at the grace deadline.
        assert await call.code() == grpc.StatusCode.OK


async def test_empty_zone_list_means_every_zone(start_carbon):
    run = await start_carbon(FAST)
    seen = set()
    call = run.stub.WatchIntensities(watch_request([], 0.05), timeout=30)
    async for update in call:
        seen.add(update.point.zone)
        if len(seen) == 3:
            break
    call.cancel()
    assert seen == {"KR", "JP-TK", "CN"}


@pytest.mark.parametrize(
    "zones, seconds, code, field",
    [
        (["KR", "MARS"], 0.05, grpc.StatusCode.NOT_FOUND, "zones[1]"),
        (["KR"], 0.001, grpc.StatusCode.INVALID_ARGUMENT, "interval"),
        ([""], 0.05, grpc.StatusCode.INVALID_ARGUMENT, "zones[0]"),
    ],
)
async def test_bad_watch_requests(start_carbon, zones, seconds, code, field):
    run = await start_carbon(FAST)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in run.stub.WatchIntensities(watch_request(zones, seconds), timeout=5):
            pass
    assert err.value.code() == code
    assert err.value.details().startswith(field + ":")


async def test_subscriber_limit_is_resource_exhausted(start_carbon):
    run = await start_carbon({**FAST, "CASPIAN_CARBON_WATCH_MAX_SUBSCRIBERS": "1"})
    first = run.stub.WatchIntensities(watch_request(["KR"], 0.05), timeout=30)
    await first.read()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in run.stub.WatchIntensities(watch_request(["KR"], 0.05), timeout=5):
            pass
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    first.cancel()


def test_subscription_drops_oldest_when_full():
    dropped = []
    sub = Subscription(("KR",), 1.0, maxsize=3, on_drop=lambda: dropped.append(1))
    for i in range(5):
        sub.offer(Update(point=i, source=None))  # type: ignore[arg-type]
    assert [u.point for u in sub._items] == [2, 3, 4]
    assert sub.dropped == 2 and len(dropped) == 2


async def test_a_reader_that_never_reads_does_not_slow_the_producer():
    settings = carbon_settings.load({})
    clock = ManualClock(T0)
    metrics = CarbonMetrics.create(CollectorRegistry())
    service = IntensityService(build_providers(settings, clock), metrics)
    hub = WatchHub(service, metrics, min_interval=0.001, queue_size=5)
    stalled = await hub.subscribe(["KR"], 0.005)
    active = await hub.subscribe(["KR"], 0.005)
    got = 0
    while got < 40:
        assert await asyncio.wait_for(active.next(), timeout=5) is not None
        got += 1
    assert len(stalled) == 5 and stalled.dropped >= 30
    await hub.close()
    assert await active.next() is None and await stalled.next() is None
