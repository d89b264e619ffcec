"""Interruptible jobs on the in-process stand-ins: planned in segments by the real optimizer, suspended and
resumed at their gates, their progress and run segments kept from the Job's events (duplicates included),
and accounted over the segments run. A job that is not interruptible is never suspended."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from caspian.v1 import common_pb2
from services.common.clock import ManualClock
from services.common.timeconv import duration_seconds, timestamp_seconds, to_duration, to_timestamp
from services.hub import lifecycle
from services.hub.accounting import job_energy_wh
from services.hub.clusters import ClusterRegistry
from services.hub.inprocess import HourlyCarbon, InstantDispatcher
from services.hub.local_optimizer import LocalOptimizer
from services.hub.phases import DISPATCHING, RUNNING, SUCCEEDED, SUSPENDED
from services.hub.ports import JobState, JobStatus
from services.hub.scheduling import Scheduler, SchedulerConfig
from services.hub.scheduling.segment_gates import due
from services.hub.store import NewAppWrapper, SqliteStore
from services.hub.validation import Limits

START = datetime(2023, 6, 1, tzinfo=UTC)
HOUR = 3600.0
GIB = 1 << 30
OVERHEAD = 300.0
SLOT = 900.0
# Clean for two hours, a dirty peak for two, clean again.
DIRTY = range(2, 4)


def intensity(zone: str, hour_start: float) -> float:
    hour = int((hour_start - START.timestamp()) // HOUR)
    return 900.0 if hour in DIRTY else 100.0


def app_wrapper(job_id: str, *, interruptible: bool, runtime: float = 4 * HOUR) -> common_pb2.AppWrapper:
    message = common_pb2.AppWrapper(
        id=job_id,
        name=job_id,
        tenant="t",
        template=common_pb2.JobTemplate(
            image="ghcr.io/caspian/sleep:1.0",
            resources=common_pb2.Resources(cpu_millis=2000, memory_bytes=2 * GIB),
            expected_runtime=to_duration(runtime),
        ),
        earliest_start=to_timestamp(START),
        deadline=to_timestamp(START + timedelta(hours=7)),
    )
    if interruptible:
        message.interruptible.resume_overhead.CopyFrom(to_duration(OVERHEAD))
        message.interruptible.min_segment.CopyFrom(to_duration(HOUR))
    message.status.phase = common_pb2.APP_WRAPPER_PHASE_PENDING
    return message


class Stack:
    def __init__(
        self, store: SqliteStore, clock: ManualClock, scheduler: Scheduler, dispatcher: InstantDispatcher
    ):
        self.store, self.clock, self.scheduler, self.dispatcher = store, clock, scheduler, dispatcher

    async def status(self, job_id: str) -> common_pb2.AppWrapperStatus:
        record = await self.store.get_app_wrapper(job_id)
        assert record is not None
        return record.message.status

    async def phase(self, job_id: str) -> int:
        return (await self.status(job_id)).phase

    async def event(self, job_id: str, state: JobState, **times: datetime) -> None:
        """Apply one Job event as the watch does (status.py: lifecycle.apply_job_event on the store's writer)."""
        event = JobStatus(
            job_id, "east", state, job_name=f"job-{job_id}", interruptible=True, checkpointing=True, **times
        )
        await self.store.update_app_wrappers(
            [lifecycle.change(job_id, lifecycle.apply_job_event, event=event, now=self.clock.now())]
        )

    def at(self, seconds: float) -> datetime:
        return datetime.fromtimestamp(seconds, UTC)


@pytest.fixture
async def stack(tmp_path):
    clock = ManualClock(START)
    store = SqliteStore(str(tmp_path / "hub.db"), now=clock.now)
    await store.open()
    registry = ClusterRegistry(store, Limits())
    await registry.register(
        common_pb2.ClusterInfo(
            name="east",
            zone="KR",
            capacity=common_pb2.Resources(cpu_millis=8000, memory_bytes=64 * GIB),
            power=common_pb2.PowerModel(watts_per_core=10.0, pue=1.2),
        )
    )
    dispatcher = InstantDispatcher()
    scheduler = Scheduler(
        store=store,
        clock=clock,
        carbon=HourlyCarbon(intensity),
        optimizer=LocalOptimizer(),
        dispatcher=dispatcher,
        clusters=registry,
        config=SchedulerConfig(),
    )
    yield Stack(store, clock, scheduler, dispatcher)
    await store.close()


def spans(segments) -> list[tuple[float, float]]:
    return [
        (timestamp_seconds(s.start) - START.timestamp(), timestamp_seconds(s.end) - START.timestamp())
        for s in segments
    ]


async def test_an_interruptible_job_pauses_through_the_dirty_peak_and_is_accounted_over_its_segments(stack):
    await stack.store.insert_app_wrappers([NewAppWrapper(app_wrapper("long", interruptible=True), b"t")])
    report = await stack.scheduler.tick()
    assert report.planned == 1, report.notes
    status = await stack.status("long")
    plan = spans(status.planned_segments)
    # Planned in segments that avoid the peak: nothing runs in hours 2..4.
    assert len(plan) >= 2, plan
    assert all(end <= 2 * HOUR or start >= 4 * HOUR for start, end in plan), plan
    # Run time: the work plus one overhead per segment after the first, in whole slots of the plan's grid.
    need = 4 * HOUR + OVERHEAD * (len(plan) - 1)
    assert need <= sum(e - s for s, e in plan) < need + SLOT * len(plan)
    # First dispatch at the first segment's start (now).
    assert status.phase == DISPATCHING and [d for d, _ in stack.dispatcher.dispatched] == ["long"]

    first_end = START.timestamp() + plan[0][1]
    await stack.event("long", JobState.RUNNING, start_time=START)
    assert await stack.phase("long") == RUNNING
    # Before the segment's end no gate; at it, suspend.
    stack.clock.set(stack.at(first_end - 60))
    await stack.scheduler.dispatch_due()
    assert stack.dispatcher.suspensions == []
    stack.clock.set(stack.at(first_end))
    await stack.scheduler.dispatch_due()
    assert stack.dispatcher.suspensions == [("long", True)]
    assert await stack.phase("long") == SUSPENDED
    # The spoke reports it suspended (twice: a replay changes nothing).
    await stack.event("long", JobState.SUSPENDED, suspended_at=stack.at(first_end))
    before = await stack.status("long")
    await stack.event("long", JobState.SUSPENDED, suspended_at=stack.at(first_end))
    await stack.event("long", JobState.RUNNING, start_time=START)  # a stale RUNNING of the first segment
    status = await stack.status("long")
    assert status == before
    assert status.phase == SUSPENDED and status.pauses == 1
    assert duration_seconds(status.progress) == pytest.approx(plan[0][1])
    assert spans(status.run_segments) == [(0.0, plan[0][1])]

    # A cycle in the pause re-plans the remaining work (with its resume overhead) on the same cluster.
    stack.clock.set(stack.at(first_end + 600))
    await stack.scheduler.tick()
    status = await stack.status("long")
    assert status.phase == SUSPENDED and status.target_cluster == "east"
    replan = spans(status.planned_segments)
    assert replan and all(s >= 4 * HOUR for s, _ in replan), replan
    remaining = 4 * HOUR - plan[0][1]
    need = remaining + OVERHEAD * len(replan)
    assert need <= sum(e - s for s, e in replan) < need + SLOT * len(replan)
    # A suspended job holds no capacity until its next segment: nothing due now.
    assert due([await stack.store.get_app_wrapper("long")], stack.clock.now().timestamp()) == ([], [])

    # Its next segment's start: resume; the Job runs again and finishes.
    resume_at = START.timestamp() + replan[0][0]
    stack.clock.set(stack.at(resume_at))
    await stack.scheduler.dispatch_due()
    assert stack.dispatcher.suspensions == [("long", True), ("long", False)]
    assert await stack.phase("long") == RUNNING
    await stack.event("long", JobState.RUNNING, start_time=stack.at(resume_at))
    await stack.event("long", JobState.RUNNING, start_time=stack.at(resume_at))
    end = resume_at + remaining + OVERHEAD
    stack.clock.set(stack.at(end))
    await stack.scheduler.dispatch_due()  # the last segment: never suspended
    assert stack.dispatcher.suspensions == [("long", True), ("long", False)]
    await stack.event(
        "long", JobState.SUCCEEDED, start_time=stack.at(resume_at), completion_time=stack.at(end)
    )
    status = await stack.status("long")
    assert status.phase == SUCCEEDED
    ran = spans(status.run_segments)
    assert ran == [(0.0, plan[0][1]), (replan[0][0], replan[0][0] + remaining + OVERHEAD)]
    assert duration_seconds(status.progress) == pytest.approx(4 * HOUR)

    # Accounting: the intensity integrated over the segments run (the overhead inside), at 2 cores x 10 W x 1.2.
    await stack.scheduler.tick()
    status = await stack.status("long")
    info = stack.scheduler.clusters.clusters()["east"]
    record = await stack.store.get_app_wrapper("long")
    assert record is not None
    # Each segment lies inside one intensity level (clean hours): its energy x that level.
    expected = sum(
        job_energy_wh(record.message.template.resources, e - s, info)
        / 1000.0
        * intensity("KR", START.timestamp() + s)
        for s, e in ran
    )
    assert status.carbon.actual_gco2 == pytest.approx(expected, rel=1e-6)
    # The counterfactual is the carbon-agnostic one-piece run (now, through the peak): more than the actual.
    assert status.carbon.counterfactual_gco2 > status.carbon.actual_gco2


async def test_a_job_that_is_not_interruptible_is_never_suspended(stack):
    await stack.store.insert_app_wrappers([NewAppWrapper(app_wrapper("plain", interruptible=False), b"t")])
    await stack.scheduler.tick()
    status = await stack.status("plain")
    assert not status.planned_segments
    started = timestamp_seconds(status.planned_start)
    stack.clock.set(stack.at(started))
    await stack.scheduler.dispatch_due()
    await stack.event("plain", JobState.RUNNING, start_time=stack.at(started))
    for hour in range(1, 5):
        stack.clock.set(stack.at(started + hour * HOUR - 1))
        await stack.scheduler.tick()
        assert await stack.phase("plain") == RUNNING
    assert stack.dispatcher.suspensions == []
    assert not (await stack.status("plain")).run_segments


def test_the_gate_decisions_suspend_only_an_interruptible_job_past_its_segment_end_with_more_to_come():
    from services.hub.store import AppWrapperRecord

    def running(interruptible: bool, ends: list[tuple[float, float]]) -> AppWrapperRecord:
        message = app_wrapper("j", interruptible=interruptible)
        message.status.phase = RUNNING
        message.status.target_cluster = "east"
        t0 = START.timestamp()
        for a, b in ends:
            message.status.planned_segments.add(
                cluster="east", start=to_timestamp(stack_at(t0 + a)), end=to_timestamp(stack_at(t0 + b))
            )
        return AppWrapperRecord(message)

    def stack_at(seconds: float) -> datetime:
        return datetime.fromtimestamp(seconds, UTC)

    at = START.timestamp() + 2 * HOUR
    two = [(0.0, 2 * HOUR), (4 * HOUR, 6 * HOUR)]
    assert due([running(True, two)], at) == ([running(True, two)], [])
    assert due([running(True, two)], at - 1) == ([], [])
    # The last segment is never cut short; a job that is not interruptible is never suspended, whatever its
    # status says, and the PAUSED operation refuses it too.
    assert due([running(True, two[:1])], at) == ([], [])
    plain = running(False, two)
    assert due([plain], at) == ([], [])
    assert not lifecycle.pause(plain, at=stack_at(at)) and plain.phase == RUNNING
    # Suspended: resumed at its next segment's start, not before.
    paused = running(True, two[1:])
    paused.message.status.phase = SUSPENDED
    assert due([paused], START.timestamp() + 4 * HOUR - 1) == ([], [])
    assert due([paused], START.timestamp() + 4 * HOUR) == ([], [paused])


async def test_a_suspended_job_missing_from_the_dispatcher_snapshot_is_failed_and_its_cluster_is_busy(stack):
    from services.hub.clusters import FailedPrecondition
    from services.hub.ports import ClusterStatus
    from services.hub.status import JobStatusReconciler

    await stack.store.insert_app_wrappers([NewAppWrapper(app_wrapper("gone", interruptible=True), b"t")])
    await stack.scheduler.tick()
    await stack.event("gone", JobState.RUNNING, start_time=START)
    await stack.event("gone", JobState.SUSPENDED, suspended_at=START + timedelta(hours=1))
    assert await stack.phase("gone") == SUSPENDED
    # Its Job is on the spoke, suspended: the cluster cannot be deregistered under it.
    with pytest.raises(FailedPrecondition):
        await stack.scheduler.clusters.deregister("east")
    reconciler = JobStatusReconciler(stack.store, stack.dispatcher, stack.clock, stack.scheduler.clusters)
    await reconciler.apply_snapshot([], [ClusterStatus("east", True)])
    status = await stack.status("gone")
    assert status.phase == common_pb2.APP_WRAPPER_PHASE_FAILED and "vanished" in status.reason


def test_a_late_resume_keeps_the_segments_length_while_it_still_ends_before_the_deadline():
    from services.hub.store import AppWrapperRecord

    def suspended() -> AppWrapperRecord:
        message = app_wrapper("late", interruptible=True)  # deadline START + 7 h
        message.status.phase = SUSPENDED
        message.status.target_cluster = "east"
        message.status.planned_segments.add(
            cluster="east",
            start=to_timestamp(START + timedelta(hours=4)),
            end=to_timestamp(START + timedelta(hours=6)),
        )
        return AppWrapperRecord(message)

    half_late = suspended()
    assert lifecycle.resume(half_late, at=START + timedelta(hours=4, minutes=30))
    assert spans(half_late.message.status.planned_segments) == [(4.5 * HOUR, 6.5 * HOUR)]
    # Shifted, it would end after the deadline: its planned end stands (the rest is re-planned after a pause).
    too_late = suspended()
    assert lifecycle.resume(too_late, at=START + timedelta(hours=5, minutes=30))
    assert spans(too_late.message.status.planned_segments) == [(4 * HOUR, 6 * HOUR)]
    assert too_late.phase == RUNNING


def test_a_job_that_does_not_checkpoint_restarts_from_zero_after_a_pause():
    from services.hub.store import AppWrapperRecord

    message = app_wrapper("fresh", interruptible=True)
    message.status.phase = RUNNING
    message.status.target_cluster = "east"
    record = AppWrapperRecord(message)

    def event(state: JobState, **times: datetime) -> bool:
        status = JobStatus("fresh", "east", state, interruptible=True, checkpointing=False, **times)
        return lifecycle.apply_job_event(record, event=status, now=START)

    assert event(JobState.RUNNING, start_time=START)
    assert event(JobState.SUSPENDED, suspended_at=START + timedelta(hours=1), suspensions=1)
    assert record.phase == SUSPENDED and record.message.status.pauses == 1
    assert duration_seconds(record.message.status.progress) == 0.0  # its hour of work is lost
    assert spans(record.message.status.run_segments) == [(0.0, HOUR)]
    # With checkpointing the same hour is progress.
    keeps = AppWrapperRecord(app_wrapper("kept", interruptible=True))
    keeps.message.status.phase = RUNNING
    keeps.message.status.target_cluster = "east"
    for state, times in (
        (JobState.RUNNING, {"start_time": START}),
        (JobState.SUSPENDED, {"suspended_at": START + timedelta(hours=1)}),
    ):
        lifecycle.apply_job_event(
            keeps,
            event=JobStatus("kept", "east", state, interruptible=True, checkpointing=True, **times),
            now=START,
        )
    assert duration_seconds(keeps.message.status.progress) == HOUR


async def test_a_job_whose_last_slot_is_partial_is_planned_when_its_work_ends_by_the_deadline(stack):
    # 3 h 50 min of work pausing through the peak: 2 h before it, then the overhead and 1 h 50 min after it,
    # done at 5 h 55 min (6 h 05 min on the plan's grid, where the overhead costs a whole slot). The last
    # run slot ends at 6 h 15 min, after the deadline; the work does not. The plan must be taken, not left
    # Pending as "the last segment misses the deadline" until the job can no longer be run at all.
    runtime = 3 * HOUR + 50 * 60
    message = app_wrapper("partial", interruptible=True, runtime=runtime)
    message.deadline.CopyFrom(to_timestamp(START + timedelta(hours=6, minutes=10)))
    await stack.store.insert_app_wrappers([NewAppWrapper(message, b"t")])
    report = await stack.scheduler.tick()
    status = await stack.status("partial")
    assert report.planned == 1, (report.notes, status.reason)
    plan = spans(status.planned_segments)
    assert len(plan) >= 2 and all(end <= 2 * HOUR or start >= 4 * HOUR for start, end in plan), plan
    # The last segment ends where its work completes on the grid: its last slot less the share not used.
    unused = SLOT * math.ceil(runtime / SLOT) - runtime
    assert plan[-1][1] == pytest.approx(6 * HOUR + 15 * 60 - unused)
    assert plan[-1][1] <= 6 * HOUR + 10 * 60
