"""The current state of every managed Job on every spoke, and the subscribers who want its changes.

Every Job object a watcher sees comes here; the phase is derived, each change is reported once to every
subscriber, and the current state is kept for the snapshot a new subscriber gets first. When a spoke stops
answering, its unfinished Jobs are reported UNKNOWN (the hub re-plans the ones it last saw PENDING and waits for
the ones it saw RUNNING); when it answers again, a re-list reports their true states.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from datetime import datetime

from services.common.clock import Clock
from services.dispatcher.capacity import Resources, pod_requests
from services.dispatcher.client import Obj
from services.dispatcher.events import ClusterEvent, JobEvent, Subscription
from services.dispatcher.job_phase import RANK, JobPhase, job_state, suspension_times
from services.dispatcher.manifests import APPWRAPPER_ID, CHECKPOINTS, INTERRUPTIBLE, SUSPENSIONS
from services.dispatcher.metrics import DispatcherMetrics

log = logging.getLogger("caspian.dispatcher.watch")


@dataclass
class TrackedJob:
    uid: str
    app_wrapper_id: str
    namespace: str
    name: str
    resource_version: int = 0
    phase: JobPhase = JobPhase.PENDING
    reason: str = ""
    start: datetime | None = None
    finish: datetime | None = None
    # What the Job's pod asks for, kept instead of the whole object: a small heap keeps GC pauses short.
    requests: Resources | None = None
    reported: JobEvent | None = None
    suspended_at: datetime | None = None
    resumed_at: datetime | None = None
    suspensions: int = 0
    interruptible: bool = False
    checkpointing: bool = False


class JobEvents:
    """The current state of every managed Job on every spoke, and the subscribers who want its changes.

    Runs on the event loop only (watch threads hand their events over with call_soon_threadsafe), so it needs no
    lock and a subscriber's snapshot and live events meet without a gap or a duplicate.
    """

    def __init__(self, clock: Clock, metrics: DispatcherMetrics, queue_size: int = 10_000):
        self.clock = clock
        self.metrics = metrics
        self.queue_size = queue_size
        self.jobs: dict[str, dict[tuple[str, str], TrackedJob]] = {}
        self.clusters: dict[str, ClusterEvent] = {}
        self.subscribers: set[Subscription] = set()
        self._unsynced: set[tuple[str, str]] = set()
        self._synced = asyncio.Event()
        self._synced.set()

    # Spokes and sync -------------------------------------------------------------------------------------

    def add_cluster(self, cluster: str) -> None:
        self.jobs.setdefault(cluster, {})
        self.clusters.setdefault(cluster, ClusterEvent(cluster, False, "not contacted yet"))

    def expect(self, cluster: str, namespace: str) -> None:
        """A watcher for (cluster, namespace) is starting: snapshots wait for its first list."""
        self._unsynced.add((cluster, namespace))
        self._synced.clear()

    def mark_synced(self, cluster: str, namespace: str | None = None) -> None:
        if namespace is None:
            self._unsynced = {key for key in self._unsynced if key[0] != cluster}
        else:
            self._unsynced.discard((cluster, namespace))
        if not self._unsynced:
            self._synced.set()

    def cluster_ready(self, cluster: str, ready: bool, reason: str) -> None:
        event = ClusterEvent(cluster, ready, reason, self.clock.now())
        self.clusters[cluster] = event
        self._emit(event)
        if ready:
            return
        self.mark_synced(cluster)
        for tracked in self.jobs.get(cluster, {}).values():
            if not tracked.phase.finished:
                self._report(
                    cluster,
                    tracked,
                    JobPhase.UNKNOWN,
                    f"spoke {cluster} is not answering; last seen {tracked.phase.value}",
                )

    # Job objects -----------------------------------------------------------------------------------------

    def observe(self, cluster: str, job: Obj, from_watch: bool = False) -> None:
        """A Job object from a list or a create response, or (from_watch) a watch event.

        A list reports the current state even when it is not newer (after an outage that state replaces
        UNKNOWN); a watch event only counts when it is newer than what is known.
        """
        meta = job.get("metadata") or {}
        app_wrapper_id = (meta.get("labels") or {}).get(APPWRAPPER_ID)
        if not app_wrapper_id:
            return
        key = (meta.get("namespace", ""), meta.get("name", ""))
        jobs = self.jobs.setdefault(cluster, {})
        tracked = jobs.get(key)
        rv = int(meta.get("resourceVersion") or 0)
        if tracked is None or tracked.uid != meta.get("uid"):
            tracked = TrackedJob(meta.get("uid", ""), app_wrapper_id, key[0], key[1])
            jobs[key] = tracked
        elif from_watch and rv <= tracked.resource_version:
            return
        if rv >= tracked.resource_version:
            phase, reason, start, finish = job_state(job)
            suspended_at, resumed_at = suspension_times(job)
            same_segment = (suspended_at, resumed_at) == (tracked.suspended_at, tracked.resumed_at)
            if same_segment and tracked.phase in RANK and phase in RANK and RANK[phase] < RANK[tracked.phase]:
                phase, reason = tracked.phase, tracked.reason
            if resumed_at is not None and phase in (JobPhase.PENDING, JobPhase.RUNNING):
                reason = "JobResumed"
            annotations = meta.get("annotations") or {}
            tracked.suspended_at, tracked.resumed_at = suspended_at, resumed_at
            tracked.suspensions = _count(annotations.get(SUSPENSIONS))
            tracked.interruptible = annotations.get(INTERRUPTIBLE) == "true"
            tracked.checkpointing = annotations.get(CHECKPOINTS) == "true"
            tracked.resource_version = rv
            if tracked.requests is None:
                template = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
                tracked.requests = pod_requests(template)
            tracked.phase, tracked.reason = phase, reason
            tracked.start, tracked.finish = start or tracked.start, finish
        self._report(cluster, tracked, tracked.phase, tracked.reason)

    def deleted(self, cluster: str, job: Obj) -> None:
        meta = job.get("metadata") or {}
        key = (meta.get("namespace", ""), meta.get("name", ""))
        tracked = self.jobs.get(cluster, {}).get(key)
        if tracked is None or tracked.uid != meta.get("uid", tracked.uid):
            return  # an older Job of the same name
        del self.jobs[cluster][key]
        self._report(cluster, tracked, JobPhase.DELETED, "the Job is gone from the spoke")

    def relisted(self, cluster: str, namespace: str, items: list[Obj]) -> None:
        """A full list of one namespace: observe every Job, and report the ones gone since as DELETED."""
        present = set()
        for job in items:
            job.setdefault("metadata", {}).setdefault("namespace", namespace)
            present.add(job["metadata"].get("name"))
            self.observe(cluster, job)
        for (ns, name), tracked in list(self.jobs.get(cluster, {}).items()):
            if ns == namespace and name not in present:
                self.deleted(cluster, {"metadata": {"namespace": ns, "name": name, "uid": tracked.uid}})

    def find(self, cluster: str, namespace: str, name: str) -> TrackedJob | None:
        return self.jobs.get(cluster, {}).get((namespace, name))

    def active_jobs(self, cluster: str) -> list[tuple[str, Resources]]:
        """(uid, pod requests) of the cluster's unfinished Jobs, for free capacity."""
        return [
            (t.uid, t.requests)
            for t in self.jobs.get(cluster, {}).values()
            if not t.phase.finished and t.phase is not JobPhase.SUSPENDED and t.requests is not None
        ]

    def _report(self, cluster: str, tracked: TrackedJob, phase: JobPhase, reason: str) -> None:
        previous = tracked.reported
        event = JobEvent(
            app_wrapper_id=tracked.app_wrapper_id,
            cluster=cluster,
            namespace=tracked.namespace,
            job_name=tracked.name,
            phase=phase,
            reason=reason,
            start_time=tracked.start,
            completion_time=tracked.finish,
            suspended_at=tracked.suspended_at if phase is JobPhase.SUSPENDED else None,
            resumed_at=tracked.resumed_at,
            suspensions=tracked.suspensions,
            interruptible=tracked.interruptible,
            checkpointing=tracked.checkpointing,
        )
        if previous is not None and replace(previous, observed_at=None) == event:
            return
        event = replace(event, observed_at=self.clock.now())
        tracked.reported = event
        self.metrics.job_events.labels(phase.value).inc()
        self._emit(event)

    # Subscribers ----------------------------------------------------------------------------------------

    def _emit(self, event: JobEvent | ClusterEvent) -> None:
        for subscription in self.subscribers:
            subscription.push(event)

    async def subscribe(self, sync_timeout: float) -> Subscription:
        """Wait (at most sync_timeout) until every watcher has listed once, then take the snapshot and start
        receiving live events, with no await in between."""
        try:
            await asyncio.wait_for(self._synced.wait(), sync_timeout)
        except TimeoutError:
            log.warning("snapshot before every spoke was listed", extra={"unsynced": sorted(self._unsynced)})
        snapshot: list[JobEvent | ClusterEvent] = []
        for jobs in self.jobs.values():
            snapshot.extend(t.reported for t in jobs.values() if t.reported is not None)
        snapshot.extend(self.clusters.values())
        subscription = Subscription(snapshot, self.queue_size)
        self.subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self.subscribers.discard(subscription)


def _count(raw: str | None) -> int:
    try:
        return max(0, int(raw or 0))
    except ValueError:
        return 0
