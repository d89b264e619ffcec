"""A simulated dispatcher: the hub's DispatcherPort with spokes that run each Job for its expected runtime.

A dispatched Job starts at once (the hub opens its gate at the planned start) and runs for the AppWrapper's
expected runtime on the simulation clock. Its transitions (Running at the start, Succeeded at the end) are
queued as the same `JobStatus` events the real dispatcher streams, and the simulation hands them to the
hub's own `JobStatusReconciler`, so the hub's status handling is the code under test.

Interruptible jobs follow Kubernetes' `spec.suspend` as the spoke simulator does (clusters/simulator):
`set_suspended(..., True)` stops the pods at once (the Job holds no capacity, reports Suspended) and, since
the evaluation's interruptible workloads checkpoint, keeps the useful work done; a resume starts new pods that
first spend the resume overhead restoring the checkpoint, then run the work left, and report Running with the
new segment's start (Kubernetes resets status.startTime at each resume). A job dispatched with
`suspended=True` holds no pod until resumed. A Job not dispatched as interruptible is never suspended
(`Refused`, as the dispatcher's FAILED_PRECONDITION). Each segment actually run is recorded: the emissions
are integrated over them (metrics.job_emissions).
"""

from __future__ import annotations

import heapq
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from caspian.v1 import common_pb2
from services.common.clock import Clock
from services.common.timeconv import duration_seconds
from services.dispatcher.manifests import job_name_for
from services.hub.ports import (
    Capacity,
    ClusterProbe,
    ClusterStatus,
    DispatcherEvent,
    DispatcherPort,
    DispatchResult,
    DispatchTarget,
    JobState,
    JobStatus,
    Refused,
    SnapshotEnd,
)

from .workload import ClusterSpec


@dataclass
class SimJob:
    app_wrapper_id: str
    cluster: str
    namespace: str
    job_name: str
    cpu_millis: int
    memory_bytes: int
    gpus: int
    start: float
    end: float
    done: bool = False
    interruptible: bool = False
    overhead: float = 0.0
    runtime: float = 0.0
    # Useful work done before the current segment, and the current segment's overhead (0 for the first).
    progress: float = 0.0
    segment_overhead: float = 0.0
    running: bool = True
    segments: list[tuple[float, float]] = field(default_factory=list)
    suspensions: int = 0
    suspended_at: datetime | None = None

    def work_done(self, now: float) -> float:
        """Useful seconds done by `now` (the overhead of a resumed segment is not useful work)."""
        if not self.running:
            return self.progress
        return self.progress + max(0.0, now - self.start - self.segment_overhead)


class SimDispatcher(DispatcherPort):
    def __init__(self, clusters: Sequence[ClusterSpec], clock: Clock):
        self.specs = {c.name: c for c in clusters}
        self.clock = clock
        self.jobs: dict[str, SimJob] = {}
        self._ends: list[tuple[float, str]] = []
        self._events: list[JobStatus] = []

    # -- DispatcherPort ------------------------------------------------------------------------------

    async def probe(self, clusters: Sequence[str]) -> list[ClusterProbe]:
        probes = []
        for name in clusters:
            spec = self.specs.get(name)
            if spec is None:
                probes.append(ClusterProbe(name, False, "unknown spoke"))
                continue
            # A suspended Job has no pods, so it holds no capacity.
            used = [j for j in self.jobs.values() if j.cluster == name and not j.done and j.running]
            allocatable = Capacity(spec.cpu_millis, spec.memory_bytes, 0)
            free = Capacity(
                spec.cpu_millis - sum(j.cpu_millis for j in used),
                spec.memory_bytes - sum(j.memory_bytes for j in used),
                0,
            )
            probes.append(ClusterProbe(name, True, "", allocatable, free))
        return probes

    async def dispatch(
        self,
        app_wrapper: common_pb2.AppWrapper,
        target: DispatchTarget,
        gate_opened_at: datetime,
        suspended: bool = False,
        **_: object,
    ) -> DispatchResult:
        name = job_name_for(app_wrapper.id)
        if app_wrapper.id in self.jobs:
            return DispatchResult(name, target.namespace, created=False)
        if target.cluster not in self.specs:
            raise RuntimeError(f"unknown spoke {target.cluster}")
        interruptible = app_wrapper.HasField("interruptible")
        if suspended and not interruptible:
            raise Refused(
                f"{app_wrapper.id}: suspended: only an interruptible AppWrapper is created suspended"
            )
        now = self.clock.now().timestamp()
        resources = app_wrapper.template.resources
        runtime = duration_seconds(app_wrapper.template.expected_runtime)
        job = SimJob(
            app_wrapper.id,
            target.cluster,
            target.namespace,
            name,
            resources.cpu_millis,
            resources.memory_bytes,
            resources.gpus,
            now,
            now + runtime,
            interruptible=interruptible,
            overhead=duration_seconds(app_wrapper.interruptible.resume_overhead) if interruptible else 0.0,
            runtime=runtime,
            running=not suspended,
        )
        self.jobs[app_wrapper.id] = job
        if suspended:
            self._events.append(self._status(job, JobState.SUSPENDED, now))
        else:
            heapq.heappush(self._ends, (job.end, job.app_wrapper_id))
            self._events.append(self._status(job, JobState.RUNNING, now))
        return DispatchResult(name, target.namespace, created=True)

    async def set_suspended(self, app_wrapper_id: str, target: DispatchTarget | str, suspend: bool) -> bool:
        """Suspend or resume the Job (spec.suspend); False when it already was as asked (idempotent)."""
        job = self.jobs.get(app_wrapper_id)
        if job is None:
            raise Refused(f"{app_wrapper_id}: no Job")
        if not job.interruptible:
            raise Refused(f"{app_wrapper_id}: not dispatched as interruptible; never suspended")
        if job.done:
            raise Refused(f"{app_wrapper_id}: the Job has finished")
        if job.running != suspend:
            return False
        now = self.clock.now().timestamp()
        if suspend:
            job.progress = min(job.runtime, job.work_done(now))
            if now > job.start:
                job.segments.append((job.start, now))
            job.running = False
            job.suspensions += 1
            job.suspended_at = self.clock.now()
            job.end = float("inf")
            self._events.append(self._status(job, JobState.SUSPENDED, now))
        else:
            # New pods restore the checkpoint (the overhead), then run the work left.
            job.running = True
            job.start = now
            job.segment_overhead = job.overhead if job.progress > 0 or job.suspensions else 0.0
            job.end = now + job.segment_overhead + (job.runtime - job.progress)
            heapq.heappush(self._ends, (job.end, job.app_wrapper_id))
            self._events.append(self._status(job, JobState.RUNNING, now, reason="JobResumed"))
        return True

    async def cancel(self, app_wrapper_id: str, target: DispatchTarget) -> bool:
        job = self.jobs.get(app_wrapper_id)
        if job is None or job.done:
            return False
        now = self.clock.now().timestamp()
        if job.running and now > job.start:
            job.segments.append((job.start, now))
        job.done = True
        return True

    async def job_events(self) -> AsyncIterator[DispatcherEvent]:
        """A snapshot of every Job and spoke, then the end marker (the simulation delivers live events itself)."""
        now = self.clock.now()
        for job in self.jobs.values():
            state = (
                JobState.SUCCEEDED if job.done else JobState.RUNNING if job.running else JobState.SUSPENDED
            )
            yield self._status(job, state, now.timestamp())
        for name in self.specs:
            yield ClusterStatus(name, True, "", now)
        yield SnapshotEnd()

    # -- the simulation's side -------------------------------------------------------------------------

    def take_events(self) -> list[JobStatus]:
        """Transitions that happened since the last call (Jobs that started)."""
        events, self._events = self._events, []
        return events

    def _stale(self, end: float, app_wrapper_id: str) -> bool:
        """A heap entry of a finished Job, or of a segment a suspension cut short."""
        job = self.jobs[app_wrapper_id]
        return job.done or not job.running or end != job.end

    def next_end(self) -> float | None:
        while self._ends and self._stale(*self._ends[0]):
            heapq.heappop(self._ends)
        return self._ends[0][0] if self._ends else None

    def finish_due(self, until: float) -> list[tuple[float, JobStatus]]:
        """Jobs ending at or before `until`, in end order, as Succeeded events stamped with their end."""
        out = []
        while self._ends and self._ends[0][0] <= until:
            end, app_wrapper_id = heapq.heappop(self._ends)
            if self._stale(end, app_wrapper_id):
                continue
            job = self.jobs[app_wrapper_id]
            job.done = True
            job.segments.append((job.start, end))
            out.append((end, self._status(job, JobState.SUCCEEDED, end)))
        return out

    def with_segments(self, outcomes: dict) -> dict:
        """The run's outcomes with each job's segments as run here (the ground truth the metrics integrate)."""
        return {
            key: replace(o, segments=tuple(self.jobs[key].segments)) if key in self.jobs else o
            for key, o in outcomes.items()
        }

    @staticmethod
    def _status(job: SimJob, state: JobState, at: float, reason: str = "") -> JobStatus:
        stamp = datetime.fromtimestamp(at, UTC)
        return JobStatus(
            app_wrapper_id=job.app_wrapper_id,
            cluster=job.cluster,
            state=state,
            job_name=job.job_name,
            namespace=job.namespace,
            reason=reason,
            start_time=datetime.fromtimestamp(job.start, UTC),
            completion_time=stamp if state == JobState.SUCCEEDED else None,
            observed_at=stamp,
            suspended_at=job.suspended_at,
            suspensions=job.suspensions,
            interruptible=job.interruptible,
            # The evaluation's interruptible workloads checkpoint (the hub dispatches them so).
            checkpointing=job.interruptible,
        )
