"""The dispatcher's behaviour, free of gRPC: create, cancel and probe on the spokes, and own their watchers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, replace
from datetime import datetime

from services.common.clock import Clock
from services.common.errors import (
    AlreadyExists,
    ContractError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from services.dispatcher.capacity import Resources
from services.dispatcher.errors import SpokeApiError, SpokeUnavailable
from services.dispatcher.events import Subscription
from services.dispatcher.kubeconfig import SpokeConfig
from services.dispatcher.manifests import APPWRAPPER_ID, JobRequest, JobSettings, job_manifest, job_name_for
from services.dispatcher.metrics import DispatcherMetrics
from services.dispatcher.spoke import Spoke
from services.dispatcher.suspension import SuspendResult, set_suspended
from services.dispatcher.tracking import JobEvents
from services.dispatcher.watcher import JobWatcher, WatchPolicy

log = logging.getLogger("caspian.dispatcher")

# Of a probe's deadline, kept for the answer to travel back (at most this, at most a fifth of the deadline).
PROBE_MARGIN_SECONDS = 0.5


@dataclass(frozen=True)
class DispatchResult:
    job_name: str
    namespace: str
    cluster: str
    created: bool


@dataclass(frozen=True)
class ClusterProbe:
    cluster: str
    ready: bool
    reason: str
    allocatable: Resources
    free: Resources
    probed_at: datetime
    ready_nodes: int
    unknown_spoke: bool = False

    @classmethod
    def unanswered(cls, cluster: str, reason: str, at: datetime, unknown_spoke: bool = False) -> ClusterProbe:
        """A spoke that is not there, not answering, or too slow: no capacity to offer."""
        return cls(cluster, False, reason, Resources(), Resources(), at, 0, unknown_spoke)


class Dispatcher:
    def __init__(
        self,
        spokes: list[Spoke],
        events: JobEvents,
        clock: Clock,
        metrics: DispatcherMetrics,
        *,
        namespaces: tuple[str, ...] = ("caspian-jobs",),
        job_settings: JobSettings | None = None,
        watch_policy: WatchPolicy | None = None,
        snapshot_wait_seconds: float = 12.0,
    ):
        self.spokes = {spoke.cluster: spoke for spoke in spokes}
        self.by_context = {spoke.config.kube_context: spoke for spoke in spokes if spoke.config.kube_context}
        self.events = events
        self.clock = clock
        self.metrics = metrics
        self.namespaces = namespaces
        self.job_settings = job_settings or JobSettings()
        self.watch_policy = watch_policy or WatchPolicy()
        # How long a new subscriber's snapshot waits for every watcher's first list.
        self.snapshot_wait_seconds = snapshot_wait_seconds
        self.watchers: dict[tuple[str, str], JobWatcher] = {}
        self._tasks: list[asyncio.Task] = []

    # Lifecycle ---------------------------------------------------------------------------------------------

    async def start(self) -> None:
        for spoke in self.spokes.values():
            self.events.add_cluster(spoke.cluster)
            spoke.listeners.append(self._readiness_changed)
            self._tasks.append(asyncio.create_task(spoke.keep_probing(), name=f"probe-{spoke.cluster}"))
            for namespace in self.namespaces:
                self._watch(spoke, namespace)

    def _watch(self, spoke: Spoke, namespace: str) -> JobWatcher:
        key = (spoke.cluster, namespace)
        watcher = self.watchers.get(key)
        if watcher is None:
            if namespace not in self.namespaces:
                log.warning(
                    "watching a namespace not in CASPIAN_DISPATCHER_NAMESPACES; add it so a restart watches it too",
                    extra={"cluster": spoke.cluster, "namespace": namespace},
                )
            watcher = JobWatcher(spoke, namespace, self.events, self.watch_policy)
            self.watchers[key] = watcher
            self.events.expect(spoke.cluster, namespace)
            self._tasks.append(asyncio.create_task(watcher.run(), name=f"watch-{spoke.cluster}-{namespace}"))
        return watcher

    def _readiness_changed(self, spoke: Spoke, ready: bool, reason: str) -> None:
        self.events.cluster_ready(spoke.cluster, ready, reason)
        # Back: list again to learn the true states. Gone: drop the silent stream so the watcher retries.
        for (cluster, _), watcher in self.watchers.items():
            if cluster == spoke.cluster:
                watcher.request_resync()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for watcher in self.watchers.values():
            watcher.close()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        for spoke in self.spokes.values():
            spoke.close()

    # Lookups -----------------------------------------------------------------------------------------------

    def find_spoke(self, name: str) -> Spoke | None:
        """The spoke with this spoke name or, failing that, this kube context (for a kubeconfig spoke the two are
        the same string; see docs/dispatcher.md, "One identity per spoke")."""
        return self.spokes.get(name) or self.by_context.get(name)

    def spoke_for(self, cluster: str, kube_context: str) -> Spoke:
        """By kube context when given, else by cluster (either may be the spoke name or its kube context)."""
        if kube_context:
            spoke = self.find_spoke(kube_context)
            if spoke is None:
                raise NotFound(f"no spoke has kube context {kube_context!r}", field="kube_context")
            return spoke
        if not cluster:
            raise InvalidArgument("cluster or kube_context is required", field="cluster")
        spoke = self.find_spoke(cluster)
        if spoke is None:
            raise NotFound(f"unknown spoke {cluster!r}", field="cluster")
        return spoke

    def list_spokes(self) -> list[SpokeConfig]:
        return [spoke.config for spoke in self.spokes.values()]

    # Dispatch ----------------------------------------------------------------------------------------------

    async def dispatch(
        self,
        request: JobRequest,
        cluster: str = "",
        kube_context: str = "",
        namespace: str = "",
        gate_opened_at: datetime | None = None,
    ) -> DispatchResult:
        received = time.perf_counter()
        spoke = self.spoke_for(cluster, kube_context)
        namespace = namespace or self.namespaces[0]
        manifest = job_manifest(request, namespace, self.clock.now(), self.job_settings)
        name = manifest["metadata"]["name"]
        try:
            job = await spoke.call("create job", spoke.client.create_job, namespace, manifest)
            created = True
        except SpokeApiError as err:
            if err.status != 409:
                raise _contract_error(err, spoke, namespace) from None
            job = await self._existing(spoke, namespace, name, request.app_wrapper_id)
            created = False
        except SpokeUnavailable as err:
            raise Unavailable(str(err)) from None
        # A namespace first seen here is watched from now on (its first list catches this Job).
        self._watch(spoke, namespace)
        if created:
            self.metrics.jobs_created.labels(spoke.cluster).inc()
            self.metrics.dispatch_latency.observe(self._latency(gate_opened_at, received))
        self.events.observe(spoke.cluster, job)
        log.info(
            "dispatched",
            extra={
                "app_wrapper": request.app_wrapper_id,
                "cluster": spoke.cluster,
                "job": name,
                "job_created": created,
            },
        )
        return DispatchResult(name, namespace, spoke.cluster, created)

    def _latency(self, gate_opened_at: datetime | None, received: float) -> float:
        """Real seconds from the gate opening (a time on the shared clock) to now."""
        if gate_opened_at is None:
            return time.perf_counter() - received
        elapsed = (self.clock.now() - gate_opened_at).total_seconds() / self.clock.speedup
        return max(0.0, elapsed)

    async def _existing(self, spoke: Spoke, namespace: str, name: str, app_wrapper_id: str) -> dict:
        """409: the Job is ours if it carries this AppWrapper's id (a retry or a replay); else a real conflict."""
        try:
            job = await spoke.call("read job", spoke.client.read_job, namespace, name)
        except SpokeApiError as err:
            if err.status == 404:
                raise Unavailable(f"Job {namespace}/{name} vanished while being dispatched; retry") from None
            raise _contract_error(err, spoke, namespace) from None
        except SpokeUnavailable as err:
            raise Unavailable(str(err)) from None
        owner = (job["metadata"].get("labels") or {}).get(APPWRAPPER_ID)
        if owner != app_wrapper_id:
            raise AlreadyExists(
                f"Job {namespace}/{name} on {spoke.cluster} exists and belongs to "
                + (f"AppWrapper {owner!r}" if owner else "no AppWrapper"),
                field="app_wrapper.id",
            )
        return job

    # Cancel ------------------------------------------------------------------------------------------------

    async def cancel(
        self, app_wrapper_id: str, cluster: str = "", kube_context: str = "", namespace: str = ""
    ) -> bool:
        """Delete the AppWrapper's Job (propagation Background) and confirm it is gone or going. False when there
        was no such Job, so a repeated cancel is harmless."""
        if not app_wrapper_id:
            raise InvalidArgument("is required", field="app_wrapper_id")
        spoke = self.spoke_for(cluster, kube_context)
        namespace = namespace or self.namespaces[0]
        name = job_name_for(app_wrapper_id)
        try:
            job = await _call(spoke, "read job", spoke.client.read_job, namespace, name)
        except SpokeApiError as err:
            if err.status == 404:
                return False
            raise _contract_error(err, spoke, namespace) from None
        owner = (job["metadata"].get("labels") or {}).get(APPWRAPPER_ID)
        if owner != app_wrapper_id:
            raise FailedPrecondition(
                f"Job {namespace}/{name} belongs to AppWrapper {owner!r}; not deleting it",
                field="app_wrapper_id",
            )
        uid = job["metadata"]["uid"]
        try:
            await _call(spoke, "delete job", spoke.client.delete_job, namespace, name, uid)
        except SpokeApiError as err:
            if err.status == 404:
                return False
            if err.status == 409:
                raise FailedPrecondition(
                    f"Job {namespace}/{name} was replaced while being cancelled; retry",
                    field="app_wrapper_id",
                ) from None
            raise _contract_error(err, spoke, namespace) from None
        try:
            after = await _call(spoke, "read job", spoke.client.read_job, namespace, name)
        except SpokeApiError as err:
            if err.status == 404:
                log.info(
                    "cancelled", extra={"app_wrapper": app_wrapper_id, "cluster": spoke.cluster, "job": name}
                )
                return True
            raise _contract_error(err, spoke, namespace) from None
        if after["metadata"].get("uid") != uid or after["metadata"].get("deletionTimestamp"):
            return True
        raise Unavailable(f"spoke {spoke.cluster} accepted the delete of {namespace}/{name} but still has it")

    # Suspend and resume -------------------------------------------------------------------------------------

    async def set_suspended(
        self,
        app_wrapper_id: str,
        suspend: bool,
        cluster: str = "",
        kube_context: str = "",
        namespace: str = "",
    ) -> SuspendResult:
        """Patch the interruptible AppWrapper's Job to spec.suspend = `suspend`, once (suspension.py)."""
        if not app_wrapper_id:
            raise InvalidArgument("is required", field="app_wrapper_id")
        spoke = self.spoke_for(cluster, kube_context)
        namespace = namespace or self.namespaces[0]
        try:
            result = await set_suspended(
                spoke.call, spoke.client, spoke.cluster, namespace, app_wrapper_id, suspend, self.clock.now()
            )
        except SpokeApiError as err:
            raise _contract_error(err, spoke, namespace) from None
        except SpokeUnavailable as err:
            raise Unavailable(str(err)) from None
        if result.changed:
            self.metrics.jobs_suspended.labels(spoke.cluster, "suspend" if suspend else "resume").inc()
        log.info(
            "suspended" if suspend else "resumed",
            extra={
                "app_wrapper": app_wrapper_id,
                "cluster": spoke.cluster,
                "job": result.job_name,
                "changed": result.changed,
                "suspensions": result.suspensions,
            },
        )
        return result

    # Probe -------------------------------------------------------------------------------------------------

    async def probe(self, clusters: list[str], within: float | None = None) -> list[ClusterProbe]:
        """One ClusterProbe per name, in order: an unknown name, a failing spoke or one slower than `within`
        seconds (the caller's deadline, less a margin for the answer) is answered alone and blinds no other."""
        names = list(clusters) or list(self.spokes)
        for i, name in enumerate(names):
            if not name:
                raise InvalidArgument("must name a spoke", field=f"clusters[{i}]")
        budget = None if within is None else max(0.0, within - min(PROBE_MARGIN_SECONDS, within * 0.2))
        return list(await asyncio.gather(*(self._probe_named(name, budget) for name in names)))

    async def _probe_named(self, name: str, budget: float | None) -> ClusterProbe:
        spoke = self.find_spoke(name)
        if spoke is None:
            known = ", ".join(sorted(self.spokes)) or "none"
            return ClusterProbe.unanswered(
                name, f"no spoke {name!r} on this dispatcher (spokes: {known})", self.clock.now(), True
            )
        try:
            probe = await asyncio.wait_for(self._probe(spoke), budget)
        except TimeoutError:
            log.warning("probe timed out", extra={"cluster": spoke.cluster, "budget_seconds": budget})
            return ClusterProbe.unanswered(
                name, f"spoke {spoke.cluster} did not answer the probe within {budget:.1f}s", self.clock.now()
            )
        return probe if probe.cluster == name else replace(probe, cluster=name)

    async def _probe(self, spoke: Spoke) -> ClusterProbe:
        now = self.clock.now()
        if spoke.readiness.ready is False:
            # Known silent: answer at once rather than spend the hub's deadline on timeouts.
            return ClusterProbe.unanswered(spoke.cluster, spoke.readiness.reason, now)
        try:
            capacity = await spoke.capacity(self.events.active_jobs(spoke.cluster))
        except (SpokeUnavailable, SpokeApiError) as err:
            return ClusterProbe.unanswered(spoke.cluster, str(err), now)
        reason = "" if capacity.ready_nodes else "no Ready, schedulable nodes"
        return ClusterProbe(
            spoke.cluster,
            True,
            reason,
            capacity.allocatable,
            capacity.free,
            self.clock.now(),
            capacity.ready_nodes,
        )

    async def subscribe(self) -> Subscription:
        return await self.events.subscribe(self.snapshot_wait_seconds)


async def _call(spoke: Spoke, what: str, fn, *args):
    try:
        return await spoke.call(what, fn, *args)
    except SpokeUnavailable as err:
        raise Unavailable(str(err)) from None


def _contract_error(err: SpokeApiError, spoke: Spoke, namespace: str) -> ContractError:
    where = f"on spoke {spoke.cluster}"
    if err.status == 404:
        return FailedPrecondition(f"namespace {namespace!r} does not exist {where}", field="namespace")
    if err.status in (401, 403):
        return FailedPrecondition(f"the dispatcher is not allowed to do this {where}: {err.message}")
    if err.status in (400, 422):
        return InvalidArgument(f"the spoke rejected the Job: {err.message}", field="app_wrapper")
    return FailedPrecondition(f"spoke {spoke.cluster} answered {err.status} {err.reason}: {err.message}")
