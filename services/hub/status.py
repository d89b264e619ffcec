"""Job status from the dispatcher: follow its event stream and reconcile AppWrappers with it.

The dispatcher never calls the hub. The hub holds one `WatchJobEvents` stream open: on connect it gets the
state of every managed Job and every spoke, then a bookmark, then each transition live. When the stream
breaks the follower reconnects with exponential backoff and reconciles from the new snapshot.

What each Job state does to its AppWrapper is `lifecycle.apply_job_event` (the JOB_* events there). A spoke turning NotReady sends its Scheduled and not-yet-started Dispatching AppWrappers back to Pending for
re-planning. A Job found on a cluster other than the AppWrapper's target is stale and is deleted, unless the
AppWrapper is not dispatched anywhere and that Job already ran: then the hub adopts it rather than run the
work twice. Events for cancelled AppWrappers delete their Job.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime

from services.common.clock import Clock
from services.hub.clusters import ClusterRegistry
from services.hub.lifecycle import apply_job_event, change, stale_job_cluster, vanish
from services.hub.phases import DISPATCHING, RUNNING, SUSPENDED
from services.hub.ports import (
    ClusterStatus,
    DispatcherEvent,
    DispatcherPort,
    JobStatus,
    SnapshotEnd,
)
from services.hub.store import AppWrapperRecord, Store

log = logging.getLogger("caspian.hub.status")


class JobStatusReconciler:
    """Applies dispatcher events to AppWrappers. Usable without a stream, e.g. by an in-process simulation.

    Events name a spoke (its kube context); the registry maps each to its cluster name first."""

    def __init__(self, store: Store, dispatcher: DispatcherPort, clock: Clock, clusters: ClusterRegistry):
        self.store = store
        self.dispatcher = dispatcher
        self.clock = clock
        self.clusters = clusters

    async def apply(self, event: DispatcherEvent) -> None:
        if isinstance(event, JobStatus):
            await self.apply_jobs([event])
        elif isinstance(event, ClusterStatus):
            await self.clusters.spoke_readiness(
                event.cluster, event.ready, event.reason, event.observed_at or self.clock.now()
            )

    async def apply_jobs(self, events: Sequence[JobStatus]) -> None:
        now = self.clock.now()
        # Each event names a spoke; the cluster it is about depends on its AppWrapper's target (several
        # clusters may share a spoke, and a cluster may be named apart from its kube context), so it is
        # resolved against the record the update reads.
        resolved = [replace(e, cluster=self.clusters.cluster_of_spoke(e.cluster)) for e in events]

        def on_spoke(i: int, event: JobStatus):
            def apply(r: AppWrapperRecord, *, now: datetime) -> bool:
                cluster = self.clusters.cluster_of_job(event.cluster, r.message.status.target_cluster)
                resolved[i] = replace(event, cluster=cluster)
                return apply_job_event(r, event=resolved[i], now=now)

            return apply

        updates = [change(e.app_wrapper_id, on_spoke(i, e), now=now) for i, e in enumerate(events)]
        records: list[AppWrapperRecord | None] = []
        for i in range(0, len(updates), 500):
            records.extend(await self.store.update_app_wrappers(updates[i : i + 500]))
        for event, record in zip(resolved, records, strict=True):
            stale_on = stale_job_cluster(record, event)
            if stale_on:
                await self._delete_job(event.app_wrapper_id, stale_on, event.namespace)

    async def apply_snapshot(self, jobs: Sequence[JobStatus], clusters: Sequence[ClusterStatus]) -> None:
        """Reconcile with a full snapshot: apply every state, then settle AppWrappers the snapshot lacks."""
        for spoke in clusters:
            await self.clusters.spoke_readiness(
                spoke.cluster, spoke.ready, spoke.reason, spoke.observed_at or self.clock.now()
            )
        await self.apply_jobs(jobs)
        # By spoke: a cluster named apart from its kube context has its Jobs reported under the spoke's name.
        ready = {c.cluster for c in clusters if c.ready}
        present = {(j.app_wrapper_id, j.cluster) for j in jobs}
        missing = []
        for record in await self.store.active_app_wrappers():
            status = record.message.status
            target_spoke = self.clusters.spoke_of_cluster(status.target_cluster)
            if target_spoke not in ready or (record.id, target_spoke) in present:
                continue
            if (record.phase == DISPATCHING and status.job_name) or record.phase in (RUNNING, SUSPENDED):
                missing.append(change(record.id, vanish, revision=record.revision))
        if missing:
            await self.store.update_app_wrappers(missing)
            log.warning("jobs missing from the dispatcher snapshot", extra={"count": len(missing)})

    async def _delete_job(self, app_wrapper_id: str, cluster: str, namespace: str) -> None:
        target = self.clusters.target_of(cluster, namespace)
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
