"""The dispatcher killed with SIGKILL in the middle of a dispatch wave, then started again: no AppWrapper gets a
second Job on any spoke, every job finishes, and the hub's view matches the Jobs the spokes hold."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from services.dispatcher.manifests import job_name_for
from tests.reliability.stacks import (
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

SPEEDUP = 720.0  # a 15-minute slot every 1.25 s
TENANT = "wave"


@pytest.fixture
def stack(tmp_path):
    running = start_stack(tmp_path, speedup=SPEEDUP)
    yield running
    running.stop()


@pytest.mark.scenario("dispatcher killed mid dispatch wave")
def test_dispatcher_killed_mid_wave_makes_no_duplicate_jobs(stack, scenario):
    total = scale(150, 600)
    recorders = record_jobs(spoke_urls(stack))
    with stack.hub_channel() as channel:
        stub = hub_stub(channel)
        now = hub_now(stub)
        # All may start from half an hour on; their deadlines leave three hours, so the plan puts most of them
        # in one or two slots: one wave of DispatchJob calls.
        messages = [
            app_wrapper(
                id=f"wave-{i:04d}",
                now=now,
                tenant=TENANT,
                runtime_s=600,
                cpu_millis=100,
                memory_bytes=256 << 20,
                start_in_s=1800,
                slack_s=3 * 3600,
            )
            for i in range(total)
        ]
        submit_bulk(stub, messages)
        trigger(stub)
        wait_until(
            lambda: all(
                p != Phase.APP_WRAPPER_PHASE_PENDING
                for p in phases_of(stub, [m.id for m in messages]).values()
            ),
            60,
            "every AppWrapper planned",
            interval=0.2,
        )

        kill_after = max(5, total // 4)
        wait_until(lambda: sum(r.count() for r in recorders) >= kill_after, 120, f"{kill_after} Jobs created")
        stack.stop_service("dispatcher", kill=True)
        created_at_kill = sum(r.count() for r in recorders)
        killed_at = time.monotonic()
        stack.start_service("dispatcher")
        restarted_in = time.monotonic() - killed_at

        def all_finished():
            found = list_all_blocking(channel, tenant=TENANT)
            return found if all(a.status.phase in TERMINAL for a in found) else None

        final = wait_until(all_finished, 180, "every AppWrapper in a terminal phase", interval=0.5)
    for recorder in recorders:
        recorder.stop()

    ever_created = created_jobs(recorders)
    per_app_wrapper = Counter(aw for _, _, aw in ever_created)
    duplicated = sum(n - 1 for n in per_app_wrapper.values())
    on_spokes = {
        (cluster, job.metadata.labels["caspian.io/appwrapper-id"]): job
        for cluster, jobs in spoke_jobs(spoke_urls(stack)).items()
        for job in jobs
    }
    mismatched = []
    for aw in final:
        status = aw.status
        job = on_spokes.get((status.target_cluster, aw.id))
        if (
            status.phase != Phase.APP_WRAPPER_PHASE_SUCCEEDED
            or job is None
            or job.metadata.name != status.job_name
            or job.metadata.name != job_name_for(aw.id)
            or not job.status.succeeded
        ):
            mismatched.append(f"{aw.id}: hub {phase_name(status.phase)} on {status.target_cluster!r}")
    elsewhere = [key for key in on_spokes if key[1].startswith("wave-")]
    phases = Counter(phase_name(a.status.phase) for a in final)

    scenario.lost = total - sum(1 for aw in final if aw.status.phase == Phase.APP_WRAPPER_PHASE_SUCCEEDED)
    scenario.duplicated = duplicated
    scenario.detail.update(
        app_wrappers=total,
        jobs_created_before_kill=created_at_kill,
        jobs_ever_created=len(ever_created),
        jobs_on_spokes=len(elsewhere),
        dispatcher_restart_seconds=round(restarted_in, 2),
        app_wrappers_dispatched_more_than_once=sum(1 for a in final if a.status.dispatch_attempts > 1),
        hub_phases=dict(phases),
        hub_spoke_mismatches=mismatched[:10],
    )
    assert 0 < created_at_kill < total, "the kill did not land inside the wave"
    assert len(final) == total
    assert duplicated == 0
    assert len(elsewhere) == total, "a Job exists twice, or on a cluster the hub does not know of"
    assert mismatched == []
    assert scenario.lost == 0
