"""Job status from the dispatcher: follow its event stream and reconcile AppWrappers with it.

The dispatcher never calls the hub. The hub holds one `WatchJobEvents` stream open: on connect it gets the
state of every managed Job and every spoke, then a bookmark, then each transition live. When the stream
breaks the follower reconnects with exponential backoff and reconciles from the new snapshot.

Transitions (event on the AppWrapper's target cluster):
    PENDING    Scheduled/Pending -> Dispatching; the Job name is recorded
    RUNNING    -> Running, started_at from the Job
    SUCCEEDED  -> Succeeded, finished_at; actual gCO2 is computed by the next cycle
    FAILED     -> Failed with the Job's reason
    UNKNOWN    the phase stays (a Running job keeps Running); the reason notes the spoke is unreachable
    DELETED    a Job that never ran is dispatched again; a running one -> Failed
A spoke turning NotReady sends its Scheduled and not-yet-started Dispatching AppWrappers back to Pending for
re-planning. A Job found on a cluster other than the AppWrapper's target is stale and is deleted, unless the
AppWrapper is not dispatched anywhere and that Job already ran: then the hub adopts it rather than run the
work twice. Events for cancelled AppWrappers delete their Job.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from services.common.clock import Clock
from services.common.timeconv import to_timestamp
from services.hub.phases import CANCELLED, DISPATCHING, FAILED, PENDING, RUNNING, SCHEDULED, SUCCEEDED
from services.hub.ports import (
    ClusterStatus,
    DispatcherEvent,
    DispatcherPort,
    DispatchTarget,
    JobState,
    JobStatus,
    SnapshotEnd,
)
from services.hub.store import TERMINAL_PHASES, AppWrapperRecord, Store, Update

log = logging.getLogger("caspian.hub.status")


@dataclass
class _Verdict:
    """What a transition decided besides the record: a Job to delete on some cluster."""

    delete_on: str = ""


ClusterReadiness = Callable[[str, bool, str, datetime], Awaitable[None]]
TargetOf = Callable[[str, str], DispatchTarget | None]


class JobStatusReconciler:
    """Applies dispatcher events to AppWrappers. Usable without a stream, e.g. by an in-process simulation."""

    def __init__(
        self,
        store: Store,
        dispatcher: DispatcherPort,
        clock: Clock,
        *,
        set_cluster_readiness: ClusterReadiness,
        target_of: TargetOf,
    ):
        self.store = store
        self.dispatcher = dispatcher
        self.clock = clock
        self.set_cluster_readiness = set_cluster_readiness
        self.target_of = target_of

    async def apply(self, event: DispatcherEvent) -> None:
        if isinstance(event, JobStatus):
            await self.apply_jobs([event])
        elif isinstance(event, ClusterStatus):
            await self.set_cluster_readiness(
                event.cluster, event.ready, event.reason, event.observed_at or self.clock.now()
            )

    async def apply_jobs(self, events: Sequence[JobStatus]) -> None:
        now = self.clock.now()
        verdicts = [_Verdict() for _ in events]
        updates = [
            Update(e.app_wrapper_id, _transition(e, v, now)) for e, v in zip(events, verdicts, strict=True)
        ]
        for i in range(0, len(updates), 500):
            await self.store.update_app_wrappers(updates[i : i + 500])
        for event, verdict in zip(events, verdicts, strict=True):
            if verdict.delete_on:
                await self._delete_job(event.app_wrapper_id, verdict.delete_on, event.namespace)

    async def apply_snapshot(self, jobs: Sequence[JobStatus], clusters: Sequence[ClusterStatus]) -> None:
        """Reconcile with a full snapshot: apply every state, then settle AppWrappers the snapshot lacks."""
        for status in clusters:
            await self.set_cluster_readiness(
                status.cluster, status.ready, status.reason, status.observed_at or self.clock.now()
            )
        await self.apply_jobs(jobs)
        ready = {c.cluster for c in clusters if c.ready}
        present = {(j.app_wrapper_id, j.cluster) for j in jobs}
        missing = []
        for record in await self.store.active_app_wrappers():
            status = record.message.status
            if status.target_cluster not in ready or (record.id, status.target_cluster) in present:
                continue
            if (record.phase == DISPATCHING and status.job_name) or record.phase == RUNNING:
                missing.append(Update(record.id, _vanished, record.revision))
        if missing:
            await self.store.update_app_wrappers(missing)
            log.warning("jobs missing from the dispatcher snapshot", extra={"count": len(missing)})

    async def _delete_job(self, app_wrapper_id: str, cluster: str, namespace: str) -> None:
        target = self.target_of(cluster, namespace)
        if target is None:
            return
        try:
            await self.dispatcher.cancel(app_wrapper_id, target)
            log.info("stale job deleted", extra={"app_wrapper": app_wrapper_id, "cluster": cluster})
        except Exception as exc:  # noqa: BLE001 - the next snapshot reports it again
            log.warning(
                "could not delete stale job",
                extra={"app_wrapper": app_wrapper_id, "cluster": cluster, "error": str(exc)[:200]},
            )


def _transition(event: JobStatus, verdict: _Verdict, now: datetime):
    def mutate(r: AppWrapperRecord) -> bool:
        status = r.message.status
        phase = r.phase
        finished = event.state in (JobState.SUCCEEDED, JobState.FAILED)
        if event.cluster != status.target_cluster:
            adoptable = phase in (PENDING, SCHEDULED) and (event.state == JobState.RUNNING or finished)
            if not adoptable:
                if event.state != JobState.DELETED:
                    verdict.delete_on = event.cluster
                return False
            status.target_cluster = event.cluster
            status.ClearField("planned_start")
        if phase == CANCELLED:
            if event.state != JobState.DELETED:
                verdict.delete_on = event.cluster
            return False
        if phase in TERMINAL_PHASES:
            return False
        state = event.state
        if state == JobState.DELETED:
            if phase == DISPATCHING and status.job_name:
                status.job_name = ""
                status.reason = "the Job was deleted before it ran; dispatching again"
                return True
            if phase == RUNNING:
                _finish(status, FAILED, "the Job was deleted from the spoke while running", event, now)
                r.needs_accounting = status.HasField("started_at")
                return True
            return False
        if state == JobState.UNKNOWN:
            note = f"state unknown: {event.reason or 'the spoke does not answer'}"
            if status.reason == note:
                return False
            status.reason = note
            return True
        changed = False
        if event.job_name and status.job_name != event.job_name:
            status.job_name = event.job_name
            changed = True
        if state == JobState.PENDING:
            if phase in (PENDING, SCHEDULED):
                status.phase = DISPATCHING
                changed = True
            if status.reason.startswith("state unknown"):
                status.reason = ""
                changed = True
            return changed
        if state == JobState.RUNNING:
            if phase != RUNNING or status.reason:
                status.phase = RUNNING
                status.reason = ""
                changed = True
            if not status.HasField("started_at"):
                status.started_at.CopyFrom(to_timestamp(event.start_time or event.observed_at or now))
                changed = True
            return changed
        if state == JobState.SUCCEEDED:
            _finish(status, SUCCEEDED, "", event, now)
        else:
            _finish(status, FAILED, f"the Job failed: {event.reason or 'no reason given'}", event, now)
        r.needs_accounting = status.HasField("started_at")
        return True

    return mutate


def _finish(status, phase: int, reason: str, event: JobStatus, now: datetime) -> None:
    status.phase = phase
    status.reason = reason
    if not status.HasField("started_at") and event.start_time is not None:
        status.started_at.CopyFrom(to_timestamp(event.start_time))
    status.finished_at.CopyFrom(to_timestamp(event.completion_time or event.observed_at or now))


def _vanished(r: AppWrapperRecord) -> bool:
    status = r.message.status
    if r.phase == DISPATCHING and status.job_name:
        status.job_name = ""
        status.reason = "the Job is gone from the spoke; dispatching again"
        return True
    if r.phase == RUNNING:
        status.phase = FAILED
        status.reason = "the Job vanished from the spoke while the hub was not watching"
        return True
    return False


def requeue_mutation(cluster: str, reason: str):
    """Send an AppWrapper planned on `cluster` but not started back to Pending."""

    def mutate(r: AppWrapperRecord) -> bool:
        status = r.message.status
        if status.target_cluster != cluster:
            return False
        if r.phase == SCHEDULED or (r.phase == DISPATCHING and not status.HasField("started_at")):
            status.phase = PENDING
            status.reason = reason
            status.target_cluster = ""
            status.ClearField("planned_start")
            return True
        return False

    return mutate


class JobEventFollower:
    """Keeps one dispatcher event stream open, reconnecting with exponential backoff."""

    def __init__(
        self,
        dispatcher: DispatcherPort,
        reconciler: JobStatusReconciler,
        *,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        self.dispatcher = dispatcher
        self.reconciler = reconciler
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.sleep = sleep
        self.connected = False
        self.snapshots = 0

    async def run(self) -> None:
        delay = self.backoff_initial
        while True:
            try:
                jobs: list[JobStatus] = []
                clusters: list[ClusterStatus] = []
                live = False
                async for event in self.dispatcher.job_events():
                    if live:
                        await self.reconciler.apply(event)
                    elif isinstance(event, SnapshotEnd):
                        await self.reconciler.apply_snapshot(jobs, clusters)
                        live, self.connected = True, True
                        self.snapshots += 1
                        delay = self.backoff_initial
                        log.info("dispatcher events: snapshot applied", extra={"jobs": len(jobs)})
                    elif isinstance(event, JobStatus):
                        jobs.append(event)
                    elif isinstance(event, ClusterStatus):
                        clusters.append(event)
                log.info("dispatcher event stream ended; reconnecting")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - reconnect with backoff
                log.warning(
                    "dispatcher event stream failed", extra={"error": str(exc)[:200], "retry_s": delay}
                )
            self.connected = False
            await self.sleep(delay)
            delay = min(self.backoff_max, delay * 2)
