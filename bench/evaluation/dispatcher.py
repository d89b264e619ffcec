"""A simulated dispatcher: the hub's DispatcherPort with spokes that run each Job for its expected runtime.

A dispatched Job starts at once (the hub opens its gate at the planned start) and runs for the AppWrapper's
expected runtime on the simulation clock. Its transitions (Running at the start, Succeeded at the end) are
queued as the same `JobStatus` events the real dispatcher streams, and the simulation hands them to the
hub's own `JobStatusReconciler`, so the hub's status handling is the code under test.
"""

from __future__ import annotations

import heapq
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
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
            used = [j for j in self.jobs.values() if j.cluster == name and not j.done]
            allocatable = Capacity(spec.cpu_millis, spec.memory_bytes, 0)
            free = Capacity(
                spec.cpu_millis - sum(j.cpu_millis for j in used),
                spec.memory_bytes - sum(j.memory_bytes for j in used),
                0,
            )
            probes.append(ClusterProbe(name, True, "", allocatable, free))
        return probes

    async def dispatch(
        self, app_wrapper: common_pb2.AppWrapper, target: DispatchTarget, gate_opened_at: datetime
    ) -> DispatchResult:
        name = job_name_for(app_wrapper.id)
        if app_wrapper.id in self.jobs:
            return DispatchResult(name, target.namespace, created=False)
        if target.cluster not in self.specs:
            raise RuntimeError(f"unknown spoke {target.cluster}")
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
        )
        self.jobs[app_wrapper.id] = job
        heapq.heappush(self._ends, (job.end, job.app_wrapper_id))
        self._events.append(self._status(job, JobState.RUNNING, now))
        return DispatchResult(name, target.namespace, created=True)

    async def cancel(self, app_wrapper_id: str, target: DispatchTarget) -> bool:
        job = self.jobs.get(app_wrapper_id)
        if job is None or job.done:
            return False
        job.done = True
        return True

    async def job_events(self) -> AsyncIterator[DispatcherEvent]:
        """A snapshot of every Job and spoke, then the end marker (the simulation delivers live events itself)."""
        now = self.clock.now()
        for job in self.jobs.values():
            state = JobState.SUCCEEDED if job.done else JobState.RUNNING
            yield self._status(job, state, now.timestamp())
        for name in self.specs:
            yield ClusterStatus(name, True, "", now)
        yield SnapshotEnd()

    # -- the simulation's side -------------------------------------------------------------------------

    def take_events(self) -> list[JobStatus]:
        """Transitions that happened since the last call (Jobs that started)."""
        events, self._events = self._events, []
        return events

    def next_end(self) -> float | None:
        while self._ends and self.jobs[self._ends[0][1]].done:
            heapq.heappop(self._ends)
        return self._ends[0][0] if self._ends else None

    def finish_due(self, until: float) -> list[tuple[float, JobStatus]]:
        """Jobs ending at or before `until`, in end order, as Succeeded events stamped with their end."""
        out = []
        while self._ends and self._ends[0][0] <= until:
            end, app_wrapper_id = heapq.heappop(self._ends)
            job = self.jobs[app_wrapper_id]
            if job.done:
                continue
            job.done = True
            out.append((end, self._status(job, JobState.SUCCEEDED, end)))
        return out

    @staticmethod
    def _status(job: SimJob, state: JobState, at: float) -> JobStatus:
        stamp = datetime.fromtimestamp(at, UTC)
        return JobStatus(
            app_wrapper_id=job.app_wrapper_id,
            cluster=job.cluster,
            state=state,
            job_name=job.job_name,
            namespace=job.namespace,
            start_time=datetime.fromtimestamp(job.start, UTC),
            completion_time=stamp if state == JobState.SUCCEEDED else None,
            observed_at=stamp,
        )
