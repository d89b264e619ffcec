"""The hub's dependencies failing under it, on one running stack with two optimizer replicas:
- one optimizer replica killed: every cycle still gets its plan from the other one (no failed cycle, no fallback);
- the carbon service killed: cycles go on with the cached forecasts, flagged stale in the cycle summary and the
  `caspian_carbon_stale` gauge, and the flag clears once the service is back."""

from __future__ import annotations

import threading
import time
from collections import Counter

import grpc
import pytest

from caspian.v1 import hub_pb2, optimizer_pb2, optimizer_pb2_grpc
from services.common.timeconv import from_timestamp
from tests.reliability.hostile import solve_request
from tests.reliability.stacks import hub_now, hub_stub, start_stack, trigger
from tests.reliability.support import (
    TERMINAL,
    Phase,
    app_wrapper,
    list_all_blocking,
    metric,
    phase_name,
    scale,
    wait_until,
)

SPEEDUP = 720.0
SOLVED = (optimizer_pb2.SOLVE_STATUS_OPTIMAL, optimizer_pb2.SOLVE_STATUS_FEASIBLE)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    running = start_stack(tmp_path_factory.mktemp("dependencies"), speedup=SPEEDUP, optimizer_replicas=2)
    yield running
    running.stop()


def submit_batch(stub, prefix: str, count: int, slack_s: float = 3600) -> list[str]:
    now = hub_now(stub)
    ids = []
    for i in range(count):
        message = app_wrapper(id=f"{prefix}-{i:03d}", now=now, runtime_s=600, slack_s=slack_s, tenant="deps")
        stub.SubmitAppWrapper(hub_pb2.SubmitAppWrapperRequest(app_wrapper=message), timeout=10)
        ids.append(message.id)
    return ids


def hub_counters(stack) -> dict[str, float]:
    address = stack.services["hub"].metrics_address
    return {
        "error": metric(address, "caspian_schedule_cycles_total", outcome="error"),
        "fallback": metric(address, "caspian_schedule_cycles_total", outcome="fallback"),
        "fallbacks": metric(address, "caspian_optimizer_fallbacks_total"),
        "cycles": metric(address, "caspian_schedule_cycles_total"),
    }


@pytest.mark.scenario("optimizer replica killed")
def test_killing_one_of_two_optimizer_replicas_fails_no_cycle(stack, scenario):
    with stack.hub_channel() as channel:
        now = hub_now(hub_stub(channel))
    with grpc.insecure_channel(stack.optimizers[1].address) as channel:
        try:
            optimizer_pb2_grpc.OptimizerServiceStub(channel).Solve(solve_request(now), timeout=30)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                scenario.detail["skipped"] = "the optimizer does not implement Solve yet"
                pytest.skip("the optimizer does not implement Solve yet")
    cycles = scale(12, 40)
    kill_after = cycles // 3
    survivor = stack.optimizers[1]
    before = hub_counters(stack)
    survivor_solves_before = metric(survivor.metrics_address, "caspian_solves_total")
    summaries: list[hub_pb2.CycleSummary] = []
    killed = threading.Event()
    submitted: list[str] = []
    with stack.hub_channel() as channel:
        stub = hub_stub(channel)
        for k in range(cycles):
            submitted += submit_batch(stub, f"opt-{k:02d}", 3)
            if k == kill_after:
                # Killed while this cycle's Solve may be in flight on it.
                threading.Timer(0.02, lambda: (stack.kill_optimizer(0), killed.set())).start()
            summaries.append(trigger(stub))
        wait_until(killed.is_set, 10, "the replica killed")
        found = {a.id: a for a in list_all_blocking(channel, tenant="deps")}
    # Every job submitted around the kill got a plan (or already ran): none left Pending or refused.
    unplanned = [
        i
        for i in submitted
        if i not in found
        or found[i].status.phase
        in (
            Phase.APP_WRAPPER_PHASE_PENDING,
            Phase.APP_WRAPPER_PHASE_FAILED,
            Phase.APP_WRAPPER_PHASE_UNSCHEDULABLE,
        )
    ]
    after = hub_counters(stack)
    survivor_solves = metric(survivor.metrics_address, "caspian_solves_total") - survivor_solves_before
    failed = [
        f"cycle {s.cycle}: fallback={s.fallback} status={optimizer_pb2.SolveStatus.Name(s.solve_status)} {list(s.notes)}"
        for s in summaries
        if s.fallback or (s.considered and s.solve_status not in SOLVED)
    ]
    scenario.lost, scenario.duplicated = len(unplanned), 0
    scenario.detail.update(
        jobs_submitted=len(submitted),
        phases=dict(Counter(phase_name(found[i].status.phase) for i in submitted if i in found)),
        triggered_cycles=len(summaries),
        killed_after_cycle=kill_after,
        cycles_in_window=int(after["cycles"] - before["cycles"]),
        failed_cycles=int(after["error"] - before["error"]),
        fallback_cycles=int(after["fallbacks"] - before["fallbacks"]),
        solves_on_survivor=int(survivor_solves),
        failed_summaries=failed[:5],
    )
    assert stack.optimizers[0].proc.poll() is not None, "replica 0 still runs"
    assert failed == []
    assert unplanned == []
    assert after["error"] == before["error"]
    assert after["fallbacks"] == before["fallbacks"]
    assert survivor_solves >= cycles - kill_after


@pytest.mark.scenario("carbon service down")
def test_carbon_down_schedules_on_stale_data_flagged_and_recovers(stack, scenario):
    hub_metrics = lambda: stack.services["hub"].metrics_address  # noqa: E731 - the address changes on restart
    with stack.hub_channel() as channel:
        stub = hub_stub(channel)
        submit_batch(stub, "carbon-before", 3)
        fresh = trigger(stub)
        assert not fresh.carbon_stale and not fresh.carbon_blind, list(fresh.notes)
        assert metric(hub_metrics(), "caspian_carbon_stale") == 0

        stack.stop_service("carbon", kill=True)
        down_at = hub_now(stub)
        during_ids = submit_batch(stub, "carbon-down", scale(10, 40))
        stale = trigger(stub)
        stale_gauge = metric(hub_metrics(), "caspian_carbon_stale")
        blind_gauge = metric(hub_metrics(), "caspian_carbon_blind")

        # Scheduling goes on: what was submitted while carbon is down is planned, dispatched and finishes.
        def finished():
            found = {a.id: a for a in list_all_blocking(channel, tenant="deps")}
            return found if all(found[i].status.phase in TERMINAL for i in during_ids) else None

        final = wait_until(finished, 120, "jobs submitted while carbon is down finished", interval=0.3)
        down_for = (hub_now(stub) - down_at).total_seconds()
        later = trigger(stub)

        stack.start_service("carbon")
        back_at = time.monotonic()
        recovered_ids = submit_batch(stub, "carbon-after", 3)
        # The hub's channel reconnects after its connection backoff: the first cycles may still miss the service.
        recovered = wait_until(
            lambda: (s := trigger(stub)) and not s.carbon_stale and s,
            60,
            "a cycle with fresh carbon data",
            0.2,
        )
        recovered_in = time.monotonic() - back_at
        recovered_gauge = metric(hub_metrics(), "caspian_carbon_stale")
        planned_after = [
            stub.GetAppWrapper(hub_pb2.GetAppWrapperRequest(id=i), timeout=10).app_wrapper
            for i in recovered_ids
        ]

    phases = Counter(phase_name(final[i].status.phase) for i in during_ids)
    scenario.lost = sum(1 for i in during_ids if final[i].status.phase != Phase.APP_WRAPPER_PHASE_SUCCEEDED)
    scenario.duplicated = 0
    scenario.detail.update(
        submitted_while_down=len(during_ids),
        phases_of_those=dict(phases),
        carbon_down_sim_seconds=round(down_for, 0),
        stale_cycle=dict(
            cycle=stale.cycle,
            planned=stale.planned,
            carbon_stale=stale.carbon_stale,
            carbon_blind=stale.carbon_blind,
            notes=list(stale.notes)[:3],
        ),
        stale_gauge_while_down=stale_gauge,
        blind_gauge_while_down=blind_gauge,
        later_cycle_stale=later.carbon_stale,
        recovered_after_real_seconds=round(recovered_in, 2),
        recovered_cycle=dict(
            cycle=recovered.cycle, carbon_stale=recovered.carbon_stale, planned=recovered.planned
        ),
        stale_gauge_after_recovery=recovered_gauge,
    )
    assert stale.carbon_stale and not stale.carbon_blind, list(stale.notes)
    assert any("cached forecast" in note for note in stale.notes), list(stale.notes)
    assert stale_gauge == 1 and blind_gauge == 0
    assert later.carbon_stale
    assert scenario.lost == 0, phases
    assert not recovered.carbon_stale and not recovered.carbon_blind, list(recovered.notes)
    assert recovered_gauge == 0
    assert all(a.status.phase != Phase.APP_WRAPPER_PHASE_PENDING for a in planned_after)
    assert from_timestamp(recovered.started_at) > down_at
