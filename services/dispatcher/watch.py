"""Job status from the spokes to WatchJobEvents subscribers, without polling.

Each (spoke, namespace) has a JobWatcher: list the managed Jobs, then watch from the list's resourceVersion,
resume a watch that ends from the last resourceVersion seen, and re-list when the spoke answers 410 Gone (or
after an outage). Every Job object seen goes to JobEvents, which derives the phase, reports each change once to
every subscriber, and keeps the current state for the snapshot a new subscriber gets first.

When a spoke stops answering, its unfinished Jobs are reported UNKNOWN (the hub re-plans the ones it last saw
PENDING and waits for the ones it saw RUNNING); when it answers again, a re-list reports their true states.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import random
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kubernetes import client as k8s
from kubernetes.watch.watch import iter_resp_lines

from services.common.clock import Clock
from services.common.errors import ResourceExhausted
from services.common.timeconv import parse_time
from services.dispatcher.manifests import APPWRAPPER_ID, MANAGED_SELECTOR
from services.dispatcher.metrics import DispatcherMetrics
from services.dispatcher.spokes import Resources, Spoke, pod_requests

log = logging.getLogger("caspian.dispatcher.watch")

Obj = dict[str, Any]


class JobPhase(enum.Enum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    UNKNOWN = "UNKNOWN"
    DELETED = "DELETED"

    @property
    def finished(self) -> bool:
        return self in (JobPhase.SUCCEEDED, JobPhase.FAILED)


# Phases only move forward: a Job whose pod is briefly not ready is still RUNNING.
_RANK = {JobPhase.PENDING: 0, JobPhase.RUNNING: 1, JobPhase.SUCCEEDED: 2, JobPhase.FAILED: 2}


@dataclass(frozen=True)
class JobEvent:
    app_wrapper_id: str
    cluster: str
    namespace: str
    job_name: str
    phase: JobPhase
    reason: str = ""
    start_time: datetime | None = None
    completion_time: datetime | None = None
    observed_at: datetime | None = None


@dataclass(frozen=True)
class ClusterEvent:
    cluster: str
    ready: bool
    reason: str = ""
    observed_at: datetime | None = None


@dataclass(frozen=True)
class Bookmark:
    """End of the snapshot."""


def _condition(job: Obj, type_: str) -> Obj | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_ and cond.get("status") == "True":
            return cond
    return None


def _time(value: str | None) -> datetime | None:
    return parse_time(value) if value else None


def job_state(job: Obj) -> tuple[JobPhase, str, datetime | None, datetime | None]:
    """(phase, reason, start, finish) of a batch/v1 Job object.

    RUNNING needs a ready pod (status.ready, Kubernetes >= 1.24); on a cluster that does not fill it, an active
    pod after startTime counts. A Failed Job's finish is the Failed condition's transition time.
    """
    status = job.get("status") or {}
    start = _time(status.get("startTime"))
    failed = _condition(job, "Failed")
    if failed is not None:
        reason = failed.get("reason") or "Failed"
        if failed.get("message"):
            reason = f"{reason}: {failed['message']}"
        return JobPhase.FAILED, reason, start, _time(failed.get("lastTransitionTime"))
    if _condition(job, "Complete") is not None:
        return JobPhase.SUCCEEDED, "", start, _time(status.get("completionTime"))
    if "ready" in status:
        running = (status.get("ready") or 0) > 0
    else:
        running = (status.get("active") or 0) > 0 and start is not None
    return (JobPhase.RUNNING if running else JobPhase.PENDING), "", start, None


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


class Subscription:
    """One WatchJobEvents stream: the snapshot, a bookmark, then live events from a bounded queue."""

    def __init__(self, snapshot: list, maxsize: int):
        self.snapshot = snapshot
        self.queue: asyncio.Queue = asyncio.Queue(maxsize)
        self.overflowed = False

    def push(self, event: JobEvent | ClusterEvent) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(None)

    async def events(self) -> AsyncIterator[JobEvent | ClusterEvent | Bookmark]:
        for event in self.snapshot:
            yield event
        yield Bookmark()
        while True:
            event = await self.queue.get()
            if event is None:
                raise ResourceExhausted(
                    "the event stream fell too far behind; reconnect for a fresh snapshot"
                )
            yield event


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
            if tracked.phase in _RANK and _RANK[phase] < _RANK[tracked.phase]:
                phase, reason = tracked.phase, tracked.reason
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
            if not t.phase.finished and t.requests is not None
        ]

    def _report(self, cluster: str, tracked: TrackedJob, phase: JobPhase, reason: str) -> None:
        previous = tracked.reported
        if (
            previous is not None
            and previous.phase == phase
            and previous.reason == reason
            and previous.start_time == tracked.start
            and previous.completion_time == tracked.finish
        ):
            return
        event = JobEvent(
            app_wrapper_id=tracked.app_wrapper_id,
            cluster=cluster,
            namespace=tracked.namespace,
            job_name=tracked.name,
            phase=phase,
            reason=reason,
            start_time=tracked.start,
            completion_time=tracked.finish,
            observed_at=self.clock.now(),
        )
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


class WatchExpired(Exception):
    """410 Gone: the resourceVersion is too old; list again."""


class WatchFailed(Exception):
    pass


@dataclass(frozen=True)
class WatchPolicy:
    server_timeout_seconds: int = 300
    backoff_base_seconds: float = 0.2
    backoff_max_seconds: float = 5.0


class JobWatcher:
    """List, then watch, the managed Jobs of one namespace on one spoke, for as long as the dispatcher runs."""

    def __init__(self, spoke: Spoke, namespace: str, events: JobEvents, policy: WatchPolicy):
        self.spoke = spoke
        self.namespace = namespace
        self.events = events
        self.policy = policy
        # The stream blocks a thread for its whole life: give it its own.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"watch-{spoke.cluster}-{namespace}")
        self._response = None
        self._resync = False
        self._listing = False
        self._stopping = False
        self._wakeup = asyncio.Event()
        self.relists = 0

    def request_resync(self) -> None:
        """List again soon (the spoke just came back or went away); a list already under way will do."""
        if self._listing:
            return
        self._resync = True
        self._wakeup.set()
        self._interrupt()

    def _interrupt(self) -> None:
        response = self._response
        if response is not None:
            try:
                response.shutdown()
            except Exception:  # noqa: BLE001 - the stream is going away either way
                log.debug("watch shutdown failed", exc_info=True)

    async def run(self) -> None:
        cluster, rv, failures = self.spoke.cluster, None, 0
        while True:
            try:
                if rv is None or self._resync:
                    rv = None  # until a list succeeds, never resume an old watch
                    rv = await self._list()
                rv = await self._watch(rv)
                failures = 0
            except asyncio.CancelledError:
                raise
            except WatchExpired:
                log.info(
                    "watch expired; listing again", extra={"cluster": cluster, "namespace": self.namespace}
                )
                rv = None
            except Exception as exc:  # noqa: BLE001 - a spoke can fail in many ways; all mean wait and retry
                if self._resync:
                    continue
                failures += 1
                delay = random.random() * min(
                    self.policy.backoff_max_seconds, self.policy.backoff_base_seconds * 2**failures
                )
                log.info(
                    "watch failed; retrying",
                    extra={"cluster": cluster, "namespace": self.namespace, "error": repr(exc)[:200]},
                )
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), delay)
                except TimeoutError:
                    pass

    async def _list(self) -> str:
        self._resync = False
        self._listing = True
        try:
            listing = await self.spoke.call(
                "list jobs", self.spoke.client.list_jobs, self.namespace, MANAGED_SELECTOR
            )
        finally:
            self._listing = False
        self.relists += 1
        self.events.relisted(self.spoke.cluster, self.namespace, listing.get("items") or [])
        self.events.mark_synced(self.spoke.cluster, self.namespace)
        return listing["metadata"]["resourceVersion"]

    async def _watch(self, rv: str) -> str:
        loop = asyncio.get_running_loop()
        timeouts = self.spoke.policy.timeouts
        # The server ends the stream after server_timeout; the read timeout only catches a spoke gone silent.
        read_timeout = self.policy.server_timeout_seconds + timeouts.read
        client = self.spoke.client

        def consume() -> str:
            last = rv
            try:
                response = client.watch_jobs(
                    self.namespace,
                    MANAGED_SELECTOR,
                    rv,
                    self.policy.server_timeout_seconds,
                    (timeouts.connect, read_timeout),
                )
            except k8s.ApiException as exc:
                if exc.status == 410:
                    raise WatchExpired() from None
                raise
            self._response = response
            try:
                if self._resync or self._stopping:
                    return last
                for line in iter_resp_lines(response):
                    if not line:
                        continue
                    event = json.loads(line)
                    kind, obj = event.get("type"), event.get("object") or {}
                    if kind == "ERROR":
                        if obj.get("code") == 410:
                            raise WatchExpired()
                        raise WatchFailed(f"{obj.get('code')} {obj.get('reason')}: {obj.get('message')}")
                    last = (obj.get("metadata") or {}).get("resourceVersion") or last
                    loop.call_soon_threadsafe(self._deliver, kind, obj)
                    if self._resync or self._stopping:
                        break
                return last
            finally:
                self._response = None
                # Close, not just release: a stream left half-read must never go back to the pool for reuse.
                response.close()
                response.release_conn()

        return await loop.run_in_executor(self._executor, consume)

    def _deliver(self, kind: str, obj: Obj) -> None:
        self.spoke.contact()
        if kind == "BOOKMARK":
            return
        if kind == "DELETED":
            self.events.deleted(self.spoke.cluster, obj)
        else:
            self.events.observe(self.spoke.cluster, obj, from_watch=True)

    def close(self) -> None:
        self._stopping = True
        self._interrupt()
        self._executor.shutdown(wait=False, cancel_futures=True)
