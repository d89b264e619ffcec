"""Interruptible jobs over real gRPC against the spoke simulator: dispatch, suspend by spec.suspend, resume, finish;
the run time a checkpointing and a non-checkpointing workload really take; idempotent, exactly-once patches; and
a job not dispatched as interruptible is never suspended."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import grpc
import httpx
import pytest

from caspian.v1 import common_pb2, dispatcher_pb2
from services.common.timeconv import from_timestamp, to_duration
from services.dispatcher.manifests import job_name_for
from tests.dispatcher.conftest import START
from tests.dispatcher.support import app_wrapper, batch_api, core_api, dispatch_request

NS = "caspian-jobs"


def interruptible(aw_id: str, runtime_s: float, overhead_s: float, deadline_s: float | None = None, **kw):
    aw = app_wrapper(
        aw_id, runtime_s=runtime_s, deadline=START + timedelta(seconds=deadline_s) if deadline_s else None
    )
    aw.interruptible.CopyFrom(common_pb2.Interruptible(resume_overhead=to_duration(overhead_s), **kw))
    return aw


def suspend_request(aw_id: str, suspend: bool, cluster: str = "carbon-jp"):
    return dispatcher_pb2.SetJobSuspendedRequest(app_wrapper_id=aw_id, cluster=cluster, suspend=suspend)


async def read_job(spokes, cluster: str, aw_id: str):
    """Blocking client calls go to a thread: the simulators share this event loop."""
    return await asyncio.to_thread(
        batch_api(spokes[cluster].url).read_namespaced_job, job_name_for(aw_id), NS
    )


async def pods_of(spokes, cluster: str, aw_id: str) -> list:
    pods = await asyncio.to_thread(core_api(spokes[cluster].url).list_namespaced_pod, NS)
    return [p for p in pods.items if p.metadata.name.startswith(job_name_for(aw_id)[:20])]


def last(events, aw_id: str, phase: int):
    found = [j for j in events.jobs(aw_id) if j.phase == phase]
    return found[-1] if found else None


async def pause_and_resume(dispatcher, events, clock, aw_id: str, run_before: float, pause: float):
    """Run `run_before` seconds, suspend, stay paused `pause` seconds, resume; the resumed RUNNING event."""
    await events.wait_for(lambda e: last(e, aw_id, dispatcher_pb2.JOB_PHASE_RUNNING))
    clock.advance(run_before)
    answer = await dispatcher.stub.SetJobSuspended(suspend_request(aw_id, True), timeout=10)
    assert answer.changed and answer.suspended and answer.suspensions == 1
    suspended = await events.wait_for(lambda e: last(e, aw_id, dispatcher_pb2.JOB_PHASE_SUSPENDED))
    assert from_timestamp(suspended.suspended_at) == START + timedelta(seconds=run_before)
    assert suspended.reason == "JobSuspended" and suspended.suspensions == 1
    clock.advance(pause)
    answer = await dispatcher.stub.SetJobSuspended(suspend_request(aw_id, False), timeout=10)
    assert answer.changed and not answer.suspended
    resumed_at = START + timedelta(seconds=run_before + pause)
    resumed = await events.wait_for(
        lambda e: [
            j
            for j in e.jobs(aw_id)
            if j.phase == dispatcher_pb2.JOB_PHASE_RUNNING and j.HasField("resumed_at")
        ]
    )
    return resumed[-1], resumed_at


async def test_checkpointing_job_resumes_where_it_stopped_and_pays_the_overhead(
    dispatcher, events, clock, spokes
):
    # 600 s of work, 60 s to restore a checkpoint: 200 s, a 1000 s pause, then 400 + 60 s.
    aw = interruptible("ckpt-1", runtime_s=600, overhead_s=60, deadline_s=2000)
    await dispatcher.stub.DispatchJob(dispatch_request(aw, "carbon-jp", checkpointing=True), timeout=10)
    resumed, resumed_at = await pause_and_resume(dispatcher, events, clock, "ckpt-1", 200, 1000)
    assert from_timestamp(resumed.resumed_at) == resumed_at
    # Kubernetes resets status.startTime at a resume: the segment's start.
    assert from_timestamp(resumed.start_time) == resumed_at
    assert resumed.reason == "JobResumed" and resumed.interruptible and resumed.checkpointing

    job = await read_job(spokes, "carbon-jp", "ckpt-1")
    # Counted again from the resume, activeDeadlineSeconds still ends at the AppWrapper's deadline.
    assert job.spec.active_deadline_seconds == 2000 - 1200
    assert job.metadata.annotations["caspian.io/suspensions"] == "1"
    assert [(c.type, c.status, c.reason) for c in job.status.conditions] == [
        ("Suspended", "False", "JobResumed")
    ]

    clock.advance(459)
    assert last(events, "ckpt-1", dispatcher_pb2.JOB_PHASE_SUCCEEDED) is None
    clock.advance(1)
    done = await events.wait_for(lambda e: last(e, "ckpt-1", dispatcher_pb2.JOB_PHASE_SUCCEEDED))
    assert from_timestamp(done.completion_time) == START + timedelta(seconds=1660)
    # Run time over the two segments: 200 + 460 = the work plus one resume overhead.
    assert 200 + (from_timestamp(done.completion_time) - resumed_at).total_seconds() == 600 + 60


async def test_job_that_does_not_checkpoint_starts_again_from_zero(dispatcher, events, clock):
    aw = interruptible("nockpt-1", runtime_s=600, overhead_s=60)
    await dispatcher.stub.DispatchJob(dispatch_request(aw, "carbon-jp"), timeout=10)
    resumed, resumed_at = await pause_and_resume(dispatcher, events, clock, "nockpt-1", 500, 300)
    assert not resumed.checkpointing
    clock.advance(599)
    assert last(events, "nockpt-1", dispatcher_pb2.JOB_PHASE_SUCCEEDED) is None
    clock.advance(1)
    done = await events.wait_for(lambda e: last(e, "nockpt-1", dispatcher_pb2.JOB_PHASE_SUCCEEDED))
    # The 500 s before the pause are lost: the whole 600 s again, and nothing to restore.
    assert from_timestamp(done.completion_time) == resumed_at + timedelta(seconds=600)


async def test_suspend_and_resume_are_idempotent_and_counted_once(dispatcher, events, clock, spokes):
    aw = interruptible("idem-1", runtime_s=600, overhead_s=0)
    await dispatcher.stub.DispatchJob(dispatch_request(aw, "carbon-jp", checkpointing=True), timeout=10)
    await events.wait_for(lambda e: last(e, "idem-1", dispatcher_pb2.JOB_PHASE_RUNNING))
    first = await dispatcher.stub.SetJobSuspended(suspend_request("idem-1", True), timeout=10)
    again = await dispatcher.stub.SetJobSuspended(suspend_request("idem-1", True), timeout=10)
    assert (first.changed, again.changed) == (True, False)
    assert first.suspensions == again.suspensions == 1
    await events.wait_for(lambda e: last(e, "idem-1", dispatcher_pb2.JOB_PHASE_SUSPENDED))
    assert await pods_of(spokes, "carbon-jp", "idem-1") == []  # deleted, as Kubernetes does

    # The spoke applies the resume but its answer is lost (slower than the request timeout): the client's
    # retry meets a Job that has moved on (409 on the resourceVersion), reads it again, and leaves it.
    async with httpx.AsyncClient(base_url=spokes["carbon-jp"].url, timeout=5) as http:
        slow = {
            "status": 0,
            "count": 1,
            "verbs": ["patch"],
            "resource": "jobs",
            "delay_seconds": 1.5,
            "after_commit": True,
        }
        (await http.post("/_sim/faults", json=slow)).raise_for_status()
    resumed = await dispatcher.stub.SetJobSuspended(suspend_request("idem-1", False), timeout=15)
    assert not resumed.suspended and not resumed.changed  # the retry found it done
    job = await read_job(spokes, "carbon-jp", "idem-1")
    assert job.spec.suspend is False and job.metadata.annotations["caspian.io/suspensions"] == "1"
    await events.wait_for(lambda e: [j for j in e.jobs("idem-1") if j.HasField("resumed_at")])


async def test_created_suspended_runs_only_once_resumed(dispatcher, events, clock, spokes):
    aw = interruptible("later-1", runtime_s=100, overhead_s=30)
    answer = await dispatcher.stub.DispatchJob(
        dispatch_request(aw, "carbon-kr", suspended=True, checkpointing=True), timeout=10
    )
    suspended = await events.wait_for(lambda e: last(e, "later-1", dispatcher_pb2.JOB_PHASE_SUSPENDED))
    assert suspended.suspensions == 0 and not suspended.HasField("start_time")
    clock.advance(500)
    assert await pods_of(spokes, "carbon-kr", "later-1") == []
    await dispatcher.stub.SetJobSuspended(suspend_request("later-1", False, "carbon-kr"), timeout=10)
    running = await events.wait_for(lambda e: last(e, "later-1", dispatcher_pb2.JOB_PHASE_RUNNING))
    assert from_timestamp(running.start_time) == START + timedelta(seconds=500)
    # No progress to restore yet, so no overhead: 100 s.
    clock.advance(100)
    done = await events.wait_for(lambda e: last(e, "later-1", dispatcher_pb2.JOB_PHASE_SUCCEEDED))
    assert from_timestamp(done.completion_time) == START + timedelta(seconds=600)
    assert answer.job_name == job_name_for("later-1")


async def test_job_not_dispatched_as_interruptible_is_never_suspended(dispatcher, events, clock, spokes):
    await dispatcher.stub.DispatchJob(dispatch_request(app_wrapper("plain-1"), "carbon-jp"), timeout=10)
    await events.wait_for(lambda e: last(e, "plain-1", dispatcher_pb2.JOB_PHASE_RUNNING))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await dispatcher.stub.SetJobSuspended(suspend_request("plain-1", True), timeout=10)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "not dispatched as interruptible" in err.value.details()
    job = await read_job(spokes, "carbon-jp", "plain-1")
    assert not job.spec.suspend and job.status.active == 1

    # Nor can it be created suspended or checkpointing: those need `interruptible`.
    for flag in ("suspended", "checkpointing"):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await dispatcher.stub.DispatchJob(
                dispatch_request(app_wrapper("plain-2"), "carbon-jp", **{flag: True}), timeout=10
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and flag in err.value.details()


async def test_unknown_job_and_finished_job_are_refused(dispatcher, events, clock):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await dispatcher.stub.SetJobSuspended(suspend_request("nobody-1", True), timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    aw = interruptible("done-1", runtime_s=60, overhead_s=0)
    await dispatcher.stub.DispatchJob(dispatch_request(aw, "carbon-jp"), timeout=10)
    await events.wait_for(lambda e: last(e, "done-1", dispatcher_pb2.JOB_PHASE_RUNNING))
    clock.advance(60)
    await events.wait_for(lambda e: last(e, "done-1", dispatcher_pb2.JOB_PHASE_SUCCEEDED))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await dispatcher.stub.SetJobSuspended(suspend_request("done-1", True), timeout=10)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "finished" in err.value.details()


async def test_resume_after_the_deadline_is_refused_as_final(dispatcher, events, clock):
    aw = interruptible("late-1", runtime_s=600, overhead_s=0, deadline_s=900)
    await dispatcher.stub.DispatchJob(dispatch_request(aw, "carbon-jp", suspended=True), timeout=10)
    await events.wait_for(lambda e: last(e, "late-1", dispatcher_pb2.JOB_PHASE_SUSPENDED))
    clock.advance(1000)  # suspended, its activeDeadlineSeconds does not run: the Job has not failed
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await dispatcher.stub.SetJobSuspended(suspend_request("late-1", False), timeout=10)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert ("caspian-reason", "DEADLINE_PASSED") in tuple(err.value.trailing_metadata() or ())
    assert last(events, "late-1", dispatcher_pb2.JOB_PHASE_FAILED) is None


async def test_pauses_do_not_exhaust_the_backoff_limit(dispatcher, events, clock, spokes):
    # Each suspension's deleted pod counts as failed (as a terminating pod does); the dispatcher raised the
    # Job's backoffLimit by max_pauses, so four pauses leave it running.
    aw = interruptible("many-1", runtime_s=600, overhead_s=0, max_pauses=4)
    await dispatcher.stub.DispatchJob(dispatch_request(aw, "carbon-jp", checkpointing=True), timeout=10)
    for n in range(1, 5):
        await events.wait_for(
            lambda e, n=n: [j for j in e.jobs("many-1") if j.phase == dispatcher_pb2.JOB_PHASE_RUNNING][
                n - 1 :
            ]
        )
        clock.advance(100)
        await dispatcher.stub.SetJobSuspended(suspend_request("many-1", True), timeout=10)
        await events.wait_for(
            lambda e, n=n: [j for j in e.jobs("many-1") if j.phase == dispatcher_pb2.JOB_PHASE_SUSPENDED][
                n - 1 :
            ]
        )
        await dispatcher.stub.SetJobSuspended(suspend_request("many-1", False), timeout=10)
    job = await read_job(spokes, "carbon-jp", "many-1")
    assert job.status.failed == 4 and job.spec.backoff_limit == 2 + 4
    clock.advance(200)
    done = await events.wait_for(lambda e: last(e, "many-1", dispatcher_pb2.JOB_PHASE_SUCCEEDED))
    assert done.suspensions == 4
