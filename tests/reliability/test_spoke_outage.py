"""A spoke stopped for at least 60 s of simulated time: it goes NotReady, the jobs planned on it that had not
started are re-planned on the other spokes, the ones running on it are reconciled when it returns, and no job is
lost or run twice."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from caspian.v1 import hub_pb2
from tests.reliability.stacks import (
    clusters_by_name,
    hub_now,
    hub_stub,
    phases_of,
    spoke_urls,
    start_stack,
    submit_bulk,
    trigger,
)
from tests.reliability.support import (
    TERMINAL,
    Phase,
    app_wrapper,
    created_jobs,
    list_all_blocking,
    phase_name,
    record_jobs,
    scale,
    spoke_jobs,
    wait_until,
)

SPEEDUP = 20.0  # 60 simulated seconds are 3 real seconds
OUTAGE_SIM_S = 60.0
SLOT_S = 60
TENANT = "outage"


@pytest.fixture
def stack(tmp_path):
    running = start_stack(
        tmp_path,
        speedup=SPEEDUP,
        hub={
            "CASPIAN_HUB_SLOT_SECONDS": str(SLOT_S),
            "CASPIAN_HUB_HORIZON_SLOTS": "120",
            "CASPIAN_HUB_SCHEDULE_PERIOD_SECONDS": "60",
            "CASPIAN_HUB_DEBOUNCE_SECONDS": "2",
            "CASPIAN_HUB_DEBOUNCE_MAX_SECONDS": "10",
        },
        # NotReady after 1.5 real seconds of silence: 30 simulated seconds, half the outage.
        dispatcher={
            "CASPIAN_DISPATCHER_NOT_READY_AFTER_SECONDS": "1.5",
            "CASPIAN_DISPATCHER_PROBE_INTERVAL_SECONDS": "0.5",
            "CASPIAN_DISPATCHER_BREAKER_OPEN_SECONDS": "1",
        },
    )
    yield running
    running.stop()


@pytest.mark.scenario("spoke outage")
def test_stopped_spoke_goes_not_ready_its_jobs_move_and_it_is_reconciled(stack, scenario):
    unstarted_n, running_n = scale(20, 60), scale(6, 15)
    recorders = record_jobs(spoke_urls(stack))
    with stack.hub_channel() as channel:
        stub = hub_stub(channel)

        def get(aw_id: str):
            return stub.GetAppWrapper(hub_pb2.GetAppWrapperRequest(id=aw_id), timeout=10).app_wrapper

        # Jobs that may start five simulated minutes from now, within two minutes: planned, not started.
        now = hub_now(stub)
        later_ids = [f"later-{i:03d}" for i in range(unstarted_n)]
        submit_bulk(
            stub,
            [
                app_wrapper(
                    id=aw_id, now=now, tenant=TENANT, runtime_s=60, start_in_s=300, slack_s=2 * SLOT_S
                )
                for aw_id in later_ids
            ],
        )
        trigger(stub)
        wait_until(
            lambda: set(phases_of(stub, later_ids).values()) == {Phase.APP_WRAPPER_PHASE_SCHEDULED},
            30,
            "the later jobs planned",
            interval=0.1,
        )
        planned_on = Counter(get(i).status.target_cluster for i in later_ids)
        victim = planned_on.most_common(1)[0][0]
        moved_ids = [i for i in later_ids if get(i).status.target_cluster == victim]

        # Jobs that must run on the victim, running when it stops.
        running_ids = [f"running-{i:03d}" for i in range(running_n)]
        now = hub_now(stub)
        for aw_id in running_ids:
            message = app_wrapper(id=aw_id, now=now, tenant=TENANT, runtime_s=120, slack_s=3600)
            message.required_clusters.append(victim)
            stub.SubmitAppWrapper(hub_pb2.SubmitAppWrapperRequest(app_wrapper=message), timeout=10)
        trigger(stub)
        wait_until(
            lambda: all(get(i).status.phase == Phase.APP_WRAPPER_PHASE_RUNNING for i in running_ids),
            60,
            "the victim's jobs Running",
            interval=0.2,
        )
        assert all(get(i).status.phase == Phase.APP_WRAPPER_PHASE_SCHEDULED for i in moved_ids)

        # The outage.
        stopped_at = hub_now(stub)
        stack.stop_spoke(victim)
        wait_until(lambda: not clusters_by_name(stub)[victim].ready, 30, f"{victim} NotReady", interval=0.1)
        not_ready_after = (hub_now(stub) - stopped_at).total_seconds()

        def replanned():
            return all(
                get(i).status.target_cluster not in ("", victim)
                and get(i).status.phase != Phase.APP_WRAPPER_PHASE_PENDING
                for i in moved_ids
            )

        wait_until(replanned, 30, "the victim's unstarted jobs planned elsewhere", interval=0.1)
        replanned_after = (hub_now(stub) - stopped_at).total_seconds()
        # Jobs already running there are waited for, not re-planned: they may well be running still.
        running_during = Counter(phase_name(get(i).status.phase) for i in running_ids)
        # Down for the whole minute of simulated time (longer only if the machine is too slow to re-plan in it).
        left = OUTAGE_SIM_S - (hub_now(stub) - stopped_at).total_seconds()
        if left > 0:
            time.sleep(left / SPEEDUP)
        outage_s = (hub_now(stub) - stopped_at).total_seconds()
        stack.start_spoke(victim)
        wait_until(lambda: clusters_by_name(stub)[victim].ready, 30, f"{victim} Ready again", interval=0.1)
        ready_again_after = (hub_now(stub) - stopped_at).total_seconds()

        def all_finished():
            found = list_all_blocking(channel, tenant=TENANT)
            return found if all(a.status.phase in TERMINAL for a in found) else None

        final = {a.id: a for a in wait_until(all_finished, 120, "every AppWrapper finished", interval=0.3)}
    for recorder in recorders:
        recorder.stop()

    jobs = {
        (cluster, job.metadata.labels["caspian.io/appwrapper-id"]): job
        for cluster, items in spoke_jobs(spoke_urls(stack)).items()
        for job in items
    }
    per_app_wrapper = Counter(aw for _, _, aw in created_jobs(recorders))
    duplicated = sum(n - 1 for n in per_app_wrapper.values())
    succeeded = [a for a in final.values() if a.status.phase == Phase.APP_WRAPPER_PHASE_SUCCEEDED]
    mismatched = [
        f"{a.id}: hub {phase_name(a.status.phase)} on {a.status.target_cluster}"
        for a in final.values()
        if (a.status.target_cluster, a.id) not in jobs
        or not jobs[(a.status.target_cluster, a.id)].status.succeeded
    ]
    # Once the victim is back, a job that has still not started may move back to it: it is the cheaper spoke.
    back_on_victim = [i for i in moved_ids if final[i].status.target_cluster == victim]
    scenario.lost = len(later_ids) + len(running_ids) - len(succeeded)
    scenario.duplicated = duplicated
    scenario.detail.update(
        victim=victim,
        planned_on_victim_unstarted=len(moved_ids),
        running_on_victim=len(running_ids),
        outage_sim_seconds=round(outage_s, 1),
        not_ready_after_sim_seconds=round(not_ready_after, 1),
        replanned_after_sim_seconds=round(replanned_after, 1),
        ready_again_after_sim_seconds=round(ready_again_after, 1),
        moved_jobs_back_on_victim_after_its_return=len(back_on_victim),
        running_jobs_phase_during_outage=dict(running_during),
        hub_phases=dict(Counter(phase_name(a.status.phase) for a in final.values())),
        hub_spoke_mismatches=mismatched[:10],
    )
    assert running_during == {"RUNNING": len(running_ids)}
    assert moved_ids, "no unstarted job was planned on the spoke that was stopped"
    assert len(final) == len(later_ids) + len(running_ids)
    assert scenario.lost == 0
    assert duplicated == 0
    assert mismatched == []
    assert all(final[i].status.target_cluster == victim for i in running_ids)
