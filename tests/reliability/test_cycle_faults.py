"""Faults inside the scheduling cycle (issue 17: F7, F1, F3), on one running stack at 720x.

Each was a bug of the cycle, recorded here as a strict xfail until its fix landed; each test states what is
wanted, and its report entry carries the figures. Order matters: F3 stops the optimizer, so it runs last.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import grpc
import pytest

from caspian.v1 import common_pb2, hub_pb2
from tests.reliability.stacks import hub_now, hub_stub, start_stack, submit_bulk, trigger
from tests.reliability.support import GIB, Phase, app_wrapper, phase_name

SPEEDUP = 720.0
SOLVE_MAX_JOBS = 200  # the optimizer's MAX_JOBS, small, so F7 shows at a small size
HUB_SOLVE_TIMEOUT_S = 20


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    running = start_stack(
        tmp_path_factory.mktemp("cycle-faults"),
        speedup=SPEEDUP,
        hub={
            "CASPIAN_HUB_OPTIMIZER_TIMEOUT_SECONDS": str(HUB_SOLVE_TIMEOUT_S),
            # The hub windows its requests to the optimizer's limit (the two settings go together).
            "CASPIAN_HUB_OPTIMIZER_MAX_JOBS": str(SOLVE_MAX_JOBS),
        },
        optimizer={"CASPIAN_OPTIMIZER_MAX_JOBS": str(SOLVE_MAX_JOBS)},
    )
    yield running
    for optimizer in running.optimizers:
        if optimizer.proc is not None and optimizer.proc.poll() is None:
            os.kill(optimizer.proc.pid, signal.SIGCONT)
    running.stop()


def _phase(stub, aw_id: str) -> int:
    return stub.GetAppWrapper(hub_pb2.GetAppWrapperRequest(id=aw_id), timeout=10).app_wrapper.status.phase


@pytest.mark.scenario("cycle: more pending jobs than one Solve takes (F7)")
def test_a_backlog_above_the_optimizers_limit_is_still_optimized(stack, scenario):
    with stack.hub_channel() as channel:
        stub = hub_stub(channel)
        now = hub_now(stub)
        count = SOLVE_MAX_JOBS + 50
        submit_bulk(
            stub,
            [
                app_wrapper(
                    id=f"backlog-{i:04d}", now=now, start_in_s=6 * 3600, slack_s=12 * 3600, tenant="f7"
                )
                for i in range(count)
            ],
        )
        summary = trigger(stub)
    scenario.lost, scenario.duplicated = 0, 0
    scenario.detail.update(
        jobs=count,
        optimizer_max_jobs=SOLVE_MAX_JOBS,
        considered=summary.considered,
        fallback=summary.fallback,
        notes=list(summary.notes)[:3],
        cycle_seconds=round(summary.duration.ToTimedelta().total_seconds(), 3),
    )
    assert summary.considered >= count
    assert not summary.fallback, list(summary.notes)
    assert summary.planned >= count, list(summary.notes)


@pytest.mark.scenario("cluster named apart from its kube context (F1)")
def test_a_cluster_whose_kube_context_differs_from_its_name_runs_its_jobs(stack, scenario):
    with stack.hub_channel() as channel:
        stub = hub_stub(channel)
        stub.RegisterCluster(
            hub_pb2.RegisterClusterRequest(
                cluster=common_pb2.ClusterInfo(
                    name="east",
                    zone="CN",
                    kube_context="carbon-cn",
                    job_namespace="caspian-jobs",
                    capacity=common_pb2.Resources(cpu_millis=8000, memory_bytes=32 * GIB),
                    power=common_pb2.PowerModel(watts_per_core=12, pue=1.2),
                )
            ),
            timeout=10,
        )
        now = hub_now(stub)
        message = app_wrapper(id="east-job", now=now, runtime_s=600, slack_s=3600, tenant="f1")
        message.required_clusters.append("east")
        stub.SubmitAppWrapper(hub_pb2.SubmitAppWrapperRequest(app_wrapper=message), timeout=10)
        notes: list[str] = []
        deadline = time.monotonic() + 30
        phase = _phase(stub, "east-job")
        while time.monotonic() < deadline and phase != Phase.APP_WRAPPER_PHASE_SUCCEEDED:
            notes.extend(n for n in trigger(stub).notes if "probe" in n)
            time.sleep(0.5)
            phase = _phase(stub, "east-job")
    scenario.lost, scenario.duplicated = 0, 0
    scenario.detail.update(phase=phase_name(phase), probe_notes=sorted(set(notes))[:3])
    assert phase == Phase.APP_WRAPPER_PHASE_SUCCEEDED
    assert not notes


@pytest.mark.scenario("cycle: gates open while the optimizer hangs (F3)")
def test_planned_jobs_start_on_time_while_the_optimizer_hangs(stack, scenario):
    count = 5
    optimizer = stack.optimizers[0].proc
    with stack.hub_channel() as channel:
        stub = hub_stub(channel)
        now = hub_now(stub)
        ids = [f"gate-{i}" for i in range(count)]
        # May start in an hour (5 real seconds), must end 25 minutes after that: planned at once, started then.
        submit_bulk(
            stub,
            [
                app_wrapper(id=i, now=now, runtime_s=600, start_in_s=3600, slack_s=900, tenant="f3")
                for i in ids
            ],
        )
        trigger(stub)
        planned = {i: _phase(stub, i) for i in ids}
        os.kill(optimizer.pid, signal.SIGSTOP)
        hung = threading.Thread(target=_trigger_quietly, args=(stack,), daemon=True)
        try:
            hung.start()  # a cycle now waits on the stopped optimizer
            deadline = time.monotonic() + 15
            started = {}
            while time.monotonic() < deadline:
                started = {i: _phase(stub, i) for i in ids}
                if all(
                    p in (Phase.APP_WRAPPER_PHASE_RUNNING, Phase.APP_WRAPPER_PHASE_SUCCEEDED)
                    for p in started.values()
                ):
                    break
                time.sleep(0.25)
        finally:
            os.kill(optimizer.pid, signal.SIGCONT)
    scenario.lost, scenario.duplicated = 0, 0
    scenario.detail.update(
        planned=sorted({phase_name(p) for p in planned.values()}),
        after_15_s={i: phase_name(p) for i, p in started.items()},
    )
    assert all(p == Phase.APP_WRAPPER_PHASE_SCHEDULED for p in planned.values()), planned
    assert all(
        p in (Phase.APP_WRAPPER_PHASE_RUNNING, Phase.APP_WRAPPER_PHASE_SUCCEEDED) for p in started.values()
    ), started


def _trigger_quietly(stack) -> None:
    try:
        with stack.hub_channel() as channel:
            trigger(hub_stub(channel))
    except grpc.RpcError:
        pass
