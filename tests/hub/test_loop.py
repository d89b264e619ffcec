"""The schedule loop on a ManualClock: period, debounced submissions, backoff after failed cycles."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.hub.loop import Debounce, LoopState, Step, Wake, next_wake
from tests.hub.conftest import START
from tests.support.polling import wait_for


async def idle_until(harness, when):
    loop = harness.hub.loop

    async def check() -> bool:
        return loop.idle and loop.idle_until == when

    try:
        await wait_for(check, within=5, what=f"loop idle until {when}")
    except AssertionError as exc:
        state = (loop.idle, loop.idle_until, loop.state())
        raise AssertionError(f"{exc}; loop state {state}") from None


def cycles(harness) -> int:
    return int(harness.metric("caspian_schedule_cycle"))


async def test_period_runs_cycles_on_the_clock(make_harness):
    harness = await make_harness(scheduler_enabled=True, schedule_period_seconds=300, debounce_seconds=0)
    await idle_until(harness, START + timedelta(seconds=300))
    assert cycles(harness) == 1  # a cycle at start resumes whatever the store holds
    harness.clock.advance(299)
    await idle_until(harness, START + timedelta(seconds=300))
    assert cycles(harness) == 1
    harness.clock.advance(1)
    await idle_until(harness, START + timedelta(seconds=600))
    assert cycles(harness) == 2
    for i in range(3, 53):
        harness.clock.advance(300)
        await idle_until(harness, START + timedelta(seconds=300 * i))
    assert cycles(harness) == 52


async def test_a_burst_of_submissions_triggers_one_debounced_cycle(make_harness):
    harness = await make_harness(
        scheduler_enabled=True, schedule_period_seconds=3600, debounce_seconds=5, debounce_max_seconds=15
    )
    await harness.register_clusters()
    await idle_until(harness, START + timedelta(seconds=5))  # registering clusters is new work too
    harness.clock.advance(5)
    await idle_until(harness, START + timedelta(seconds=3605))
    before = cycles(harness)
    t0 = harness.clock.now()
    for i in range(4):
        if i:
            harness.clock.advance(4)
        await harness.submit(id=f"burst-{i}")
    # Each submission pushed the cycle 5 s out, but never past 15 s after the first one.
    await idle_until(harness, t0 + timedelta(seconds=15))
    harness.clock.advance(2)
    await idle_until(harness, t0 + timedelta(seconds=15))
    assert cycles(harness) == before
    harness.clock.advance(1)
    # One cycle planned the whole burst; the loop now waits for their start (the next slot) to open gates.
    await idle_until(harness, START + timedelta(minutes=15))
    assert cycles(harness) == before + 1
    report = harness.hub.scheduler.last_report
    assert report.considered == 4 and report.planned == 4


async def test_failed_cycles_back_off(make_harness):
    harness = await make_harness(
        scheduler_enabled=True,
        schedule_period_seconds=300,
        debounce_seconds=0,
        backoff_initial_seconds=5,
        backoff_max_seconds=60,
    )
    await idle_until(harness, START + timedelta(seconds=300))

    async def broken(*args, **kwargs):
        raise RuntimeError("cluster state on fire")

    # The cycle's first step fails (the registry it takes its snapshot from), every time until restored.
    harness.hub.clusters.refresh = broken
    harness.clock.advance(300)
    t = START + timedelta(seconds=300)
    for delay in (5, 10, 20, 40, 60, 60):
        t += timedelta(seconds=delay)
        await idle_until(harness, t)
        assert harness.hub.scheduler.last_report.outcome == "error"
        harness.clock.set(t)
    assert harness.metric("caspian_schedule_cycles_total", {"outcome": "error"}) >= 6
    del harness.hub.clusters.refresh
    await idle_until(harness, t + timedelta(seconds=300))
    assert harness.hub.scheduler.last_report.outcome in ("ok", "idle")


@pytest.mark.parametrize(
    "state, now, step, at",
    [
        (LoopState(None, None, None), 10.0, Step.SLEEP, None),
        (LoopState(300.0, None, None), 10.0, Step.SLEEP, 300.0),
        (LoopState(300.0, 15.0, 120.0), 10.0, Step.SLEEP, 15.0),
        (LoopState(300.0, 15.0, 120.0), 15.0, Step.CYCLE, 15.0),
        (LoopState(300.0, None, 120.0), 120.0, Step.GATES, 120.0),
        (LoopState(120.0, None, 120.0), 120.0, Step.CYCLE, 120.0),  # the cycle opens the gates too
        (LoopState(300.0, None, None, requested=True), 10.0, Step.CYCLE, 300.0),
    ],
)
def test_next_wake_is_the_loop_rule(state, now, step, at):
    # The one rule both the loop and the evaluation's simulation (bench/evaluation/simulate.py) follow.
    assert next_wake(state, now) == Wake(step, at)


def test_a_poke_during_a_cycle_keeps_the_burst():
    debounce = Debounce(delay=5, max_delay=30)
    debounce.poke(100.0)
    before = debounce.pokes
    debounce.poke(101.0)  # arrived while the cycle ran
    debounce.end_burst(before)
    assert debounce.due == 106.0
    debounce.end_burst(debounce.pokes)
    assert debounce.due is None
