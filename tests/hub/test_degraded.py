"""Degraded modes: carbon down (stale, then blind), optimizer down or slow (retry, then greedy fallback),
dispatcher down, a broken event stream, and an API that answers while a cycle is stuck."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta

from caspian.v1 import common_pb2, dispatcher_pb2, hub_pb2, optimizer_pb2
from services.common.timeconv import from_timestamp, to_timestamp
from tests.hub.conftest import START, phase_is
from tests.support.polling import wait_for

Phase = common_pb2.AppWrapperPhase
HOUR = 3600


async def test_carbon_down_uses_stale_forecasts_then_schedules_blind(make_harness):
    harness = await make_harness(carbon_stale_seconds=600, carbon_blind_after_seconds=2 * HOUR)
    fakes = harness.fakes
    await harness.register_clusters()
    fakes.carbon.levels = {"KR": 400.0, "JP-TK": 100.0, "CN": 600.0}
    await harness.submit(id="a", earliest_start=_ts(START, 8 * HOUR), deadline_in=20 * HOUR)
    healthy = await harness.cycle()
    assert not healthy.carbon_stale and not healthy.carbon_blind
    assert (await harness.get("a")).status.target_cluster == "carbon-jp"

    fakes.carbon.down = True
    harness.clock.advance(HOUR)
    stale = await harness.cycle()
    assert stale.carbon_stale and not stale.carbon_blind and not stale.fallback
    assert any("cached forecast" in note for note in stale.notes)
    request = fakes.optimizer.requests[-1]
    jp = next(f for f in request.forecasts if f.cluster == "carbon-jp")
    assert set(jp.gco2_per_kwh) == {100.0}  # the cache, extended with the last value past its end
    assert request.options.policy == optimizer_pb2.POLICY_CASPIAN
    assert (await harness.get("a")).status.target_cluster == "carbon-jp"
    assert harness.metric("caspian_carbon_stale") == 1 and harness.metric("caspian_carbon_blind") == 0

    harness.clock.advance(2 * HOUR)
    blind = await harness.cycle()
    assert blind.carbon_stale and blind.carbon_blind
    assert blind.policy == optimizer_pb2.POLICY_LEAST_LOADED
    assert any("carbon-blind" in note for note in blind.notes)
    request = fakes.optimizer.requests[-1]
    assert request.options.policy == optimizer_pb2.POLICY_LEAST_LOADED
    for forecast in request.forecasts:
        assert len(set(forecast.gco2_per_kwh)) == 1  # flat: no slot or cluster looks greener
    assert harness.metric("caspian_carbon_blind") == 1

    fakes.carbon.down = False
    harness.clock.advance(900)
    back = await harness.cycle()
    assert not back.carbon_stale and not back.carbon_blind
    assert harness.metric("caspian_carbon_blind") == 0 and harness.metric("caspian_carbon_stale") == 0


async def test_carbon_down_with_no_cache_is_blind_at_once(harness):
    harness.fakes.carbon.down = True
    await harness.register_clusters()
    await harness.submit(id="a")
    summary = await harness.cycle()
    assert summary.carbon_blind and summary.planned == 1
    assert (await harness.get("a")).status.phase == Phase.APP_WRAPPER_PHASE_DISPATCHING


async def test_carbon_service_flagging_its_data_stale_is_passed_on(harness):
    harness.fakes.carbon.stale = True
    await harness.register_clusters()
    await harness.submit(id="a")
    summary = await harness.cycle()
    assert summary.carbon_stale and not summary.carbon_blind


async def test_optimizer_down_retries_once_then_greedy_fallback(harness, caplog):
    fakes = harness.fakes
    fakes.optimizer.mode = "down"
    fakes.carbon.levels = {"KR": 400.0, "JP-TK": 100.0, "CN": 600.0}
    await harness.register_clusters()
    await harness.submit(id="a", earliest_start=_ts(START, 4 * HOUR))
    with caplog.at_level(logging.WARNING, logger="caspian.hub.scheduler"):
        summary = await harness.cycle()
    # Two attempts by the hub (the shared channel may also retry UNAVAILABLE underneath each one).
    attempts = [r.attempt for r in caplog.records if r.getMessage() == "optimizer failed"]
    assert attempts == [1, 2]
    assert all(r.cycle == summary.cycle for r in caplog.records if r.getMessage() == "optimizer failed")
    asked = len(fakes.optimizer.requests)
    assert summary.fallback and summary.planned == 1
    assert any("greedy fallback" in note for note in summary.notes)
    aw = await harness.get("a")
    assert aw.status.phase == Phase.APP_WRAPPER_PHASE_SCHEDULED
    assert aw.status.target_cluster == "carbon-jp"  # the fallback still follows the forecast
    assert harness.metric("caspian_optimizer_fallbacks_total") == 1
    assert harness.metric("caspian_schedule_cycles_total", {"outcome": "fallback"}) == 1

    fakes.optimizer.mode = "ok"
    summary = await harness.cycle()
    assert not summary.fallback and len(fakes.optimizer.requests) == asked + 1


async def test_optimizer_timeout_falls_back(make_harness):
    harness = await make_harness(optimizer_timeout_seconds=0.2)
    harness.fakes.optimizer.mode = "slow"
    await harness.register_clusters()
    await harness.submit(id="a")
    began = time.monotonic()
    summary = await harness.cycle()
    # F3: one deadline for the whole solve, retry included: a hung optimizer costs it once, not twice.
    assert summary.fallback and len(harness.fakes.optimizer.requests) == 1
    assert any("solve deadline (0.2 s)" in note for note in summary.notes), summary.notes
    assert time.monotonic() - began < 2 * 0.2 + 1.0
    assert (await harness.get("a")).status.phase == Phase.APP_WRAPPER_PHASE_DISPATCHING


async def test_optimizer_without_a_solution_in_time_falls_back(harness):
    harness.fakes.optimizer.mode = "no_solution"
    await harness.register_clusters()
    await harness.submit(id="a")
    summary = await harness.cycle()
    assert summary.fallback and summary.planned == 1


async def test_a_stuck_cycle_never_blocks_the_api(make_harness):
    harness = await make_harness(optimizer_timeout_seconds=30)
    fakes = harness.fakes
    fakes.optimizer.mode = "slow"
    await harness.register_clusters()
    await harness.submit(id="a")
    cycle = asyncio.ensure_future(harness.cycle())
    await asyncio.wait_for(fakes.optimizer.entered.wait(), 10)
    began = time.monotonic()
    await harness.submit(id="b")
    await harness.get("a")
    await harness.stub.ListAppWrappers(hub_pb2.ListAppWrappersRequest(), timeout=5)
    await harness.stub.GetStats(hub_pb2.GetStatsRequest(), timeout=5)
    assert time.monotonic() - began < 5
    assert not cycle.done()
    fakes.optimizer.release.set()
    summary = await asyncio.wait_for(cycle, 20)
    assert summary.planned >= 1 and not summary.fallback


async def test_dispatcher_down_retries_then_fails_the_job(make_harness):
    harness = await make_harness(max_dispatch_attempts=2, follow_events=False)
    fakes = harness.fakes
    await harness.register_clusters()
    fakes.dispatcher.down = True
    await harness.submit(id="a")
    summary = await harness.cycle()
    assert any("probe failed" in note for note in summary.notes)
    aw = await harness.get("a")
    assert aw.status.phase == Phase.APP_WRAPPER_PHASE_SCHEDULED
    assert "dispatch attempt 1 failed" in aw.status.reason and aw.status.dispatch_attempts == 1
    await harness.cycle()
    aw = await harness.get("a")
    assert aw.status.phase == Phase.APP_WRAPPER_PHASE_FAILED and "dispatch failed 2 times" in aw.status.reason


async def test_event_stream_breaks_and_the_hub_reconciles_from_the_snapshot(harness):
    fakes = harness.fakes
    await harness.register_clusters()
    await harness.submit(id="a")
    await harness.cycle()
    await wait_for(_async(lambda: fakes.dispatcher.connections >= 1), what="first connection")
    fakes.dispatcher.down = True
    fakes.dispatcher.break_streams()
    await wait_for(_async(lambda: not fakes.dispatcher.streams), what="stream gone")
    # While the hub is not listening, the Job runs and finishes.
    job = fakes.dispatcher.jobs[("a", "carbon-kr")]
    job.phase = dispatcher_pb2.JOB_PHASE_SUCCEEDED
    job.start_time, job.completion_time = START, _dt(START, HOUR)
    assert (await harness.get("a")).status.phase == Phase.APP_WRAPPER_PHASE_DISPATCHING
    fakes.dispatcher.down = False
    await wait_for(lambda: phase_is(harness, "a", Phase.APP_WRAPPER_PHASE_SUCCEEDED), what="reconciled")
    assert fakes.dispatcher.connections >= 2
    assert harness.hub.follower.connected


def _async(predicate):
    async def check() -> bool:
        return predicate()

    return check


def _dt(start, seconds):
    return start + timedelta(seconds=seconds)


def _ts(start, seconds):
    return to_timestamp(_dt(start, seconds))


async def test_a_dispatch_refused_because_the_deadline_passed_is_final_at_once(make_harness):
    """#16: the dispatcher marks that refusal `caspian-reason: DEADLINE_PASSED`; the hub does not retry it."""
    harness = await make_harness(max_dispatch_attempts=5, follow_events=False)
    fakes = harness.fakes
    await harness.register_clusters()
    fakes.dispatcher.refuse_deadline = True
    await harness.submit(id="a")
    await harness.cycle()
    aw = await harness.get("a")
    assert aw.status.phase == Phase.APP_WRAPPER_PHASE_UNSCHEDULABLE, aw.status
    assert "deadline passed" in aw.status.reason and "dispatcher refused" in aw.status.reason
    await harness.cycle()
    assert len(fakes.dispatcher.dispatched) == 1


async def test_a_job_whose_deadline_passes_before_its_gate_is_unschedulable_not_dispatched(make_harness):
    harness = await make_harness(follow_events=False)
    fakes = harness.fakes
    await harness.register_clusters()
    await harness.submit(
        id="late", runtime=HOUR, deadline_in=4 * HOUR, earliest_start=to_timestamp(START + timedelta(hours=2))
    )
    await harness.cycle()
    aw = await harness.get("late")
    assert aw.status.phase == Phase.APP_WRAPPER_PHASE_SCHEDULED
    # The gate pass (as the loop runs it while a cycle waits on the optimizer) comes after the deadline.
    harness.clock.set(START + timedelta(hours=5))
    assert await harness.hub.scheduler.dispatch_due() == 0
    aw = await harness.get("late")
    assert aw.status.phase == Phase.APP_WRAPPER_PHASE_UNSCHEDULABLE
    assert "deadline passed while it waited" in aw.status.reason
    assert not fakes.dispatcher.dispatched


async def test_gates_open_on_time_while_a_cycle_waits_on_a_hung_optimizer(make_harness):
    """F3: a job planned earlier is dispatched at its planned start while the cycle still awaits the solve."""
    harness = await make_harness(optimizer_timeout_seconds=30)
    fakes = harness.fakes
    await harness.register_clusters()
    await harness.submit(id="later", earliest_start=to_timestamp(START + timedelta(hours=1)))
    await harness.cycle()
    aw = await harness.get("later")
    assert aw.status.phase == Phase.APP_WRAPPER_PHASE_SCHEDULED
    assert from_timestamp(aw.status.planned_start) == START + timedelta(hours=1)

    fakes.optimizer.mode = "slow"
    fakes.optimizer.entered.clear()
    await harness.submit(id="new")
    cycle = asyncio.ensure_future(harness.cycle())
    await asyncio.wait_for(fakes.optimizer.entered.wait(), 10)
    harness.clock.set(START + timedelta(hours=1))
    await wait_for(
        lambda: phase_is(harness, "later", Phase.APP_WRAPPER_PHASE_DISPATCHING), what="gate opened", within=5
    )
    assert not cycle.done()
    fakes.optimizer.release.set()
    await asyncio.wait_for(cycle, 20)
