"""Clock skew between the hub and the services it calls, over real gRPC: a real optimizer and a real carbon
service on simulated clocks that agree with the hub's or lead it by a known amount, and a hub built as in
production (create_hub), so every call goes through the stamping server interceptor and the hub's SkewProbe."""

from __future__ import annotations

import time
from datetime import timedelta

import grpc
import pytest
from prometheus_client import CollectorRegistry

from caspian.v1 import hub_pb2_grpc, optimizer_pb2, optimizer_pb2_grpc
from services.carbon import settings as carbon_settings
from services.carbon.server import build_server as build_carbon
from services.common.clock import ManualClock, SimClock
from services.common.clockstamp import HANDLED_KEY, NOW_KEY, Stamp, read_stamp
from services.hub.peerclocks import PeerClocks, describe
from services.hub.server import HubDeps, create_hub
from services.optimizer.server import build_server as build_optimizer
from services.optimizer.settings import OptimizerSettings
from tests.hub.conftest import START, Harness, hub_settings

SPEEDUP = 10.0
AHEAD_S = 312.0
# At 10x, 0.3 s of real scheduling jitter in one event loop is 3 simulated seconds.
TOLERANCE_S = 3.0
SKEW = "caspian_hub_peer_clock_skew_seconds"


async def _start_peers(anchor: float, optimizer_ahead_s: float):
    optimizer = await build_optimizer(
        OptimizerSettings(port=0, metrics_port=-1, time_limit_seconds=5.0),
        CollectorRegistry(),
        clock=SimClock(START + timedelta(seconds=optimizer_ahead_s), SPEEDUP, anchor),
    )
    await optimizer.start()
    carbon = await build_carbon(
        carbon_settings.load(
            {
                "CASPIAN_CARBON_PORT": "0",
                "CASPIAN_CARBON_METRICS_PORT": "-1",
                "CASPIAN_CARBON_REFRESH_SECONDS": "3600",
            }
        ),
        CollectorRegistry(),
        clock=SimClock(START, SPEEDUP, anchor),
    )
    await carbon.start()
    return optimizer, carbon


@pytest.fixture
async def skewed_hub(tmp_path, fakes):
    """`await skewed_hub(optimizer_ahead_s)`: a hub whose carbon agrees with it and whose optimizer leads it."""
    running = []

    async def make(optimizer_ahead_s: float) -> Harness:
        anchor = time.time()
        optimizer, carbon = await _start_peers(anchor, optimizer_ahead_s)
        clock = SimClock(START, SPEEDUP, anchor)
        registry = CollectorRegistry()
        settings = hub_settings(
            tmp_path, fakes, carbon_address=carbon.address, optimizer_address=optimizer.address
        )
        server, hub = await create_hub(settings, registry, HubDeps(clock=clock))
        await server.start()
        channel = grpc.aio.insecure_channel(server.address)
        harness = Harness(hub, server, hub_pb2_grpc.HubServiceStub(channel), channel, clock, fakes, registry)
        running.append((harness, optimizer, carbon))
        return harness

    yield make
    for harness, optimizer, carbon in running:
        await harness.channel.close()
        await harness.server.stop(0)
        await optimizer.stop(0)
        await carbon.stop(0)


async def _planned_cycle(harness: Harness):
    await harness.register_clusters()
    await harness.submit(id="skew-1", runtime=1800)
    summary = await harness.cycle()
    assert summary.planned == 1 and not summary.fallback, summary  # the real optimizer planned it
    return summary


async def test_an_optimizer_ahead_of_the_hub_shows_in_the_gauge_and_a_cycle_note(skewed_hub):
    harness = await skewed_hub(AHEAD_S)
    summary = await _planned_cycle(harness)

    optimizer_skew = harness.registry.get_sample_value(SKEW, {"peer": "optimizer"})
    carbon_skew = harness.registry.get_sample_value(SKEW, {"peer": "carbon"})
    assert optimizer_skew == pytest.approx(AHEAD_S, abs=TOLERANCE_S)
    assert carbon_skew == pytest.approx(0.0, abs=TOLERANCE_S)
    skew_notes = [n for n in summary.notes if n.startswith("clock skew:")]
    assert skew_notes == [f"clock skew: optimizer is {optimizer_skew:.0f} s ahead of the hub"]
    assert abs(round(optimizer_skew) - AHEAD_S) <= TOLERANCE_S


async def test_agreeing_clocks_give_no_note(skewed_hub):
    harness = await skewed_hub(0.0)
    summary = await _planned_cycle(harness)

    for peer in ("optimizer", "carbon"):
        assert harness.registry.get_sample_value(SKEW, {"peer": peer}) == pytest.approx(0.0, abs=TOLERANCE_S)
    assert not [n for n in summary.notes if n.startswith("clock skew:")], list(summary.notes)


async def test_a_refusal_carries_the_senders_now_too():
    clock = ManualClock(START + timedelta(days=3))
    server = await build_optimizer(
        OptimizerSettings(port=0, metrics_port=-1), CollectorRegistry(), clock=clock
    )
    await server.start()
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = optimizer_pb2_grpc.OptimizerServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Solve(optimizer_pb2.SolveRequest(), timeout=10)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            answer = read_stamp(caught.value.trailing_metadata())
            assert answer is not None
            assert answer.now == pytest.approx(clock.now().timestamp(), abs=0.001)
            call = stub.ListPolicies(optimizer_pb2.ListPoliciesRequest(), timeout=10)
            await call
            assert read_stamp(await call.trailing_metadata()).now == pytest.approx(clock.now().timestamp())
    finally:
        await server.stop(0)


def test_skew_is_corrected_by_half_the_network_round_trip():
    clock = ManualClock(START)
    peers = PeerClocks(clock, max_skew_seconds=5.0)
    now = clock.now().timestamp()
    # 1 s round trip of which 0.4 s handling: 0.3 s each way, so the peer stamped at hub time now - 0.3.
    assert peers.observe("dispatcher", Stamp(now + 100.0, 0.4), 1.0) == pytest.approx(100.3)
    assert peers.notes() == ["clock skew: dispatcher is 100 s ahead of the hub"]
    peers.observe("dispatcher", Stamp(now - 2.0, 0.0), 0.0)
    assert peers.notes() == []
    assert describe("carbon", -312.4) == "clock skew: carbon is 312 s behind the hub"


def test_an_answer_too_slow_to_tell_is_left_out():
    clock = ManualClock(START)
    peers = PeerClocks(clock, max_skew_seconds=5.0)
    now = clock.now().timestamp()
    # 6 s round trip, 0.5 s of it handling: 2.75 s each way, more than half the 5 s limit.
    assert peers.observe("optimizer", Stamp(now + 100.0, 0.5), 6.0) is None
    assert peers.skews == {} and peers.notes() == []
    # A long call that was mostly handling is fine: 0.1 s each way.
    assert peers.observe("optimizer", Stamp(now, 29.8), 30.0) == pytest.approx(0.1)


def test_the_limit_scales_with_a_sim_clocks_speedup():
    peers = PeerClocks(SimClock(START, 720.0), max_skew_seconds=5.0)
    assert peers.limit_seconds == 3600.0
    peers.record("dispatcher", 3000.0)
    assert peers.notes() == []
    peers.record("dispatcher", -3700.0)
    assert peers.notes() == ["clock skew: dispatcher is 3700 s behind the hub"]


@pytest.mark.parametrize(
    "metadata",
    [
        (),
        ((NOW_KEY, "soon"),),
        ((NOW_KEY, "nan"),),
        ((NOW_KEY, "inf"),),
        ((NOW_KEY, "1"), (HANDLED_KEY, "-5")),
    ],
)
def test_a_stamp_that_does_not_parse_is_ignored(metadata):
    assert read_stamp(metadata) is None
