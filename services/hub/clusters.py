"""The registered clusters: the one owner of their state.

`ClusterRegistry` registers, updates and deregisters clusters, keeps their readiness and free capacity from
probes and dispatcher events, sends the jobs planned on a cluster that turns NotReady back to Pending, and
builds the `DispatchTarget` of a cluster. The scheduler and the job-status reconciler ask it; nothing else
keeps a copy.

One identity for a spoke: the dispatcher knows a spoke by its kube context, the hub a cluster by its name
(the two differ when `kube_context` is set). Probes go out by kube context and dispatcher events come in by
it; both are mapped back to cluster names here. A probe failure for one spoke is that cluster's failure
only: when the dispatcher refuses a probe of several spokes (one it does not know), each is probed alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from caspian.v1 import common_pb2
from services.common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from services.common.timeconv import to_timestamp
from services.hub import lifecycle
from services.hub.phases import DISPATCHING, PENDING, RUNNING, SUSPENDED
from services.hub.ports import Capacity, ClusterProbe, DispatcherPort, DispatchTarget, Refused
from services.hub.store import Store
from services.hub.validation import SETTABLE_CLUSTER_FIELDS, Limits, check_cluster, check_dns_label

log = logging.getLogger("caspian.hub.clusters")


@dataclass
class ClusterView:
    """A cluster as one cycle sees it: its registration, readiness and free capacity (None: not probed)."""

    info: common_pb2.ClusterInfo
    ready: bool
    reason: str
    free: common_pb2.Resources | None


@dataclass
class ClusterSnapshot:
    views: dict[str, ClusterView]
    notes: list[str] = field(default_factory=list)


def resources_of(capacity: Capacity) -> common_pb2.Resources:
    return common_pb2.Resources(
        cpu_millis=capacity.cpu_millis, memory_bytes=capacity.memory_bytes, gpus=capacity.gpus
    )


def spoke_of(info: common_pb2.ClusterInfo) -> str:
    """The dispatcher's name for a cluster's spoke: its kube context (by convention, its name)."""
    return info.kube_context or info.name


class ClusterRegistry:
    def __init__(self, store: Store, limits: Limits):
        self.store = store
        self.limits = limits
        self._clusters: dict[str, common_pb2.ClusterInfo] = {}
        self._lock = asyncio.Lock()
        # Called when there is new work to plan (a cluster registered, ready again, or jobs requeued).
        self.on_work: Callable[[], None] = lambda: None

    async def load(self) -> None:
        self._clusters = {c.name: c for c in await self.store.list_clusters()}

    async def reload(self) -> None:
        """Read the clusters again from the store: with several replicas, another may have changed them."""
        async with self._lock:
            await self.load()

    # -- reading ---------------------------------------------------------------------------------------------

    def clusters(self) -> Mapping[str, common_pb2.ClusterInfo]:
        return self._clusters

    def list_clusters(self) -> list[common_pb2.ClusterInfo]:
        return [self._clusters[name] for name in sorted(self._clusters)]

    def ready_count(self) -> int:
        return sum(1 for c in self._clusters.values() if c.ready)

    def target_of(self, cluster: str, namespace: str = "") -> DispatchTarget | None:
        """Where a Job for `cluster` goes; an unregistered name is taken as its own kube context."""
        if not cluster:
            return None
        info = self._clusters.get(cluster)
        if info is None:
            return DispatchTarget(cluster, cluster, namespace or "default")
        return DispatchTarget(cluster, spoke_of(info), namespace or info.job_namespace or "default")

    def names_of_spoke(self, spoke: str) -> list[str]:
        """The registered clusters on a spoke (by kube context), in name order."""
        return sorted(name for name, info in self._clusters.items() if spoke_of(info) == spoke)

    def cluster_of_spoke(self, spoke: str) -> str:
        """The cluster name a dispatcher event from `spoke` is about: the one registered there (its own name
        first, when several share the context); the spoke itself when none is."""
        names = self.names_of_spoke(spoke)
        if not names:
            return spoke
        return spoke if spoke in names else names[0]

    def cluster_of_job(self, spoke: str, target: str) -> str:
        """The cluster a Job seen on `spoke` belongs to, for an AppWrapper targeted at `target`: the target when
        the Job is on the target's spoke (a cluster named apart from its kube context), else
        `cluster_of_spoke`."""
        info = self._clusters.get(target) if target else None
        if info is not None and spoke_of(info) == spoke:
            return target
        return self.cluster_of_spoke(spoke)

    def spoke_of_cluster(self, cluster: str) -> str:
        """The spoke (kube context) a registered cluster's Jobs run on; an unregistered name is its own."""
        info = self._clusters.get(cluster)
        return spoke_of(info) if info is not None else cluster

    # -- registration ----------------------------------------------------------------------------------------

    async def register(self, info: common_pb2.ClusterInfo) -> common_pb2.ClusterInfo:
        check_cluster(info, self.limits)
        cluster = _normalized(info)
        async with self._lock:
            existing = self._clusters.get(cluster.name)
            if existing is not None:
                if _spec(existing) == _spec(cluster):
                    return existing
                raise AlreadyExists(
                    f"cluster {cluster.name!r} is registered with a different spec; use UpdateCluster",
                    field="cluster.name",
                )
            saved = await self.store.save_cluster(cluster)
            self._clusters[saved.name] = saved
        log.info("cluster registered", extra={"cluster": saved.name, "zone": saved.zone})
        self.on_work()
        return saved

    async def update(self, info: common_pb2.ClusterInfo, paths: Sequence[str]) -> common_pb2.ClusterInfo:
        check_dns_label(info.name, "cluster.name", "cluster name")
        for i, path in enumerate(paths):
            if path not in SETTABLE_CLUSTER_FIELDS:
                raise InvalidArgument(
                    f"{path!r} is not settable; use one of {', '.join(SETTABLE_CLUSTER_FIELDS)}",
                    field=f"update_paths[{i}]",
                )
        async with self._lock:
            existing = self._clusters.get(info.name)
            if existing is None:
                raise NotFound(f"cluster {info.name!r} is not registered", field="cluster.name")
            merged = common_pb2.ClusterInfo()
            merged.CopyFrom(existing)
            for path in paths or SETTABLE_CLUSTER_FIELDS:
                if path == "labels":
                    merged.labels.clear()
                    merged.labels.update(info.labels)
                elif path in ("capacity", "power"):
                    getattr(merged, path).CopyFrom(getattr(info, path))
                else:
                    setattr(merged, path, getattr(info, path))
            check_cluster(merged, self.limits)
            merged = _normalized(merged, keep_state=True)
            saved = await self.store.save_cluster(merged)
            self._clusters[saved.name] = saved
        self.on_work()
        return saved

    async def deregister(self, name: str) -> None:
        check_dns_label(name, "name", "cluster name")
        async with self._lock:
            if name not in self._clusters:
                raise NotFound(f"cluster {name!r} is not registered", field="name")
            active = [
                r for r in await self.store.active_app_wrappers() if r.message.status.target_cluster == name
            ]
            busy = [r for r in active if r.phase in (DISPATCHING, RUNNING, SUSPENDED)]
            if busy:
                raise FailedPrecondition(
                    f"{len(busy)} AppWrappers are dispatched to, running or suspended on {name!r}; cancel them or "
                    "let them finish first",
                    field="name",
                )
            reason = f"re-planning: cluster {name} was deregistered"
            await self.store.update_app_wrappers(
                [lifecycle.change(r.id, lifecycle.requeue, reason=reason, from_cluster=name) for r in active]
            )
            await self.store.delete_cluster(name)
            del self._clusters[name]
        log.info("cluster deregistered", extra={"cluster": name})
        self.on_work()

    # -- probes and readiness --------------------------------------------------------------------------------

    async def refresh(self, dispatcher: DispatcherPort, now: datetime) -> ClusterSnapshot:
        """Probe every registered cluster's spoke, record what came back, and return the cycle's view.

        A cluster whose probe did not come back is planned on its registered capacity and last readiness."""
        await self.reload()
        snapshot = ClusterSnapshot({})
        if self._clusters:
            spokes = sorted({spoke_of(info) for info in self._clusters.values()})
            probes = await self._probe(dispatcher, spokes, snapshot.notes)
            await self.record_probes(
                [
                    ClusterProbe(name, p.ready, p.reason, p.allocatable, p.free)
                    for p in probes
                    for name in self.names_of_spoke(p.cluster)
                ],
                now,
            )
            probed = {p.cluster: p for p in probes}
        else:
            probed = {}
        for name, info in self._clusters.items():
            probe = probed.get(spoke_of(info))
            if probe is None:
                snapshot.views[name] = ClusterView(info, info.ready, info.not_ready_reason, None)
            else:
                free = resources_of(probe.free) if probe.free is not None else None
                snapshot.views[name] = ClusterView(info, probe.ready, probe.reason, free)
        return snapshot

    async def probe(
        self, dispatcher: DispatcherPort, name: str, now: datetime, within: float = 3.0
    ) -> common_pb2.ClusterInfo:
        """Probe one registered cluster's spoke now (at registration): a kube context the dispatcher does not
        know shows at once as not ready with the refusal; a dispatcher that does not answer changes nothing."""
        info = self._clusters[name]
        notes: list[str] = []
        try:
            probes = await asyncio.wait_for(self._probe(dispatcher, [spoke_of(info)], notes), within)
        except TimeoutError:
            return info

        await self.record_probes(
            [
                ClusterProbe(n, p.ready, p.reason, p.allocatable, p.free)
                for p in probes
                for n in self.names_of_spoke(p.cluster)
            ],
            now,
        )
        return self._clusters.get(name, info)

    async def _probe(
        self, dispatcher: DispatcherPort, spokes: list[str], notes: list[str]
    ) -> list[ClusterProbe]:
        try:
            return await dispatcher.probe(spokes)
        except Refused as exc:
            # The dispatcher refused the probe (a spoke it does not know): ask each alone, so one bad name
            # costs only its own cluster.
            if len(spokes) == 1:
                notes.append(f"probe of spoke {spokes[0]} refused ({_short(exc)})")
                return [ClusterProbe(spokes[0], False, f"probe refused: {_short(exc)}")]
        except Exception as exc:  # noqa: BLE001 - plan on registered capacity instead
            notes.append(f"dispatcher probe failed ({_short(exc)}); using registered capacity")
            return []
        answers = await asyncio.gather(*(dispatcher.probe([s]) for s in spokes), return_exceptions=True)
        probes: list[ClusterProbe] = []
        for spoke, answer in zip(spokes, answers, strict=True):
            if isinstance(answer, Refused):
                notes.append(f"probe of spoke {spoke} refused ({_short(answer)})")
                probes.append(ClusterProbe(spoke, False, f"probe refused: {_short(answer)}"))
            elif isinstance(answer, BaseException):
                notes.append(f"probe of spoke {spoke} failed ({_short(answer)}); using registered capacity")
            else:
                probes.extend(p for p in answer if p.cluster == spoke)
        return probes

    async def record_probes(self, probes: Iterable[ClusterProbe], at: datetime) -> None:
        """Probes by cluster name."""
        for probe in probes:
            free = resources_of(probe.free) if probe.free is not None else None
            await self._set_state(probe.cluster, probe.ready, probe.reason, at, free)

    async def spoke_readiness(self, spoke: str, ready: bool, reason: str, at: datetime) -> None:
        """A dispatcher event: the spoke (kube context) turned ready or not; every cluster on it follows."""
        for name in self.names_of_spoke(spoke) or [spoke]:
            await self._set_state(name, ready, reason, at)

    async def _set_state(
        self, name: str, ready: bool, reason: str, at: datetime, free: common_pb2.Resources | None = None
    ) -> None:
        # Under the lock, so a probe never re-creates a cluster being deregistered.
        async with self._lock:
            current = self._clusters.get(name)
            if current is None:
                return
            was_ready = current.ready
            updated = common_pb2.ClusterInfo()
            updated.CopyFrom(current)
            if free is not None:
                updated.free.CopyFrom(free)
            updated.ready = ready
            updated.not_ready_reason = "" if ready else (reason or "not ready")
            updated.last_probe.CopyFrom(to_timestamp(at))
            self._clusters[name] = await self.store.save_cluster(updated)
        if was_ready and not ready:
            log.warning("cluster not ready", extra={"cluster": name, "reason": updated.not_ready_reason})
            await self._requeue(
                name, f"re-planning: cluster {name} is not ready ({updated.not_ready_reason})"
            )
        elif ready and not was_ready:
            log.info("cluster ready again", extra={"cluster": name})
            self.on_work()

    async def _requeue(self, cluster: str, reason: str) -> None:
        records = [
            r for r in await self.store.active_app_wrappers() if r.message.status.target_cluster == cluster
        ]
        if not records:
            return
        results = await self.store.update_app_wrappers(
            [lifecycle.change(r.id, lifecycle.requeue, reason=reason, from_cluster=cluster) for r in records]
        )
        moved = sum(1 for r in results if r is not None and r.phase == PENDING)
        if moved:
            log.info("requeued for re-planning", extra={"cluster": cluster, "count": moved})
            self.on_work()


def _normalized(info: common_pb2.ClusterInfo, keep_state: bool = False) -> common_pb2.ClusterInfo:
    cluster = common_pb2.ClusterInfo()
    cluster.CopyFrom(info)
    if not cluster.kube_context:
        cluster.kube_context = cluster.name
    if not cluster.job_namespace:
        cluster.job_namespace = "default"
    if not keep_state:
        cluster.ClearField("free")
        cluster.ClearField("last_probe")
        cluster.ready = True
        cluster.not_ready_reason = ""
    return cluster


def _spec(info: common_pb2.ClusterInfo) -> bytes:
    spec = common_pb2.ClusterInfo()
    spec.name = info.name
    for name in SETTABLE_CLUSTER_FIELDS:
        if name == "labels":
            spec.labels.update(info.labels)
        elif name in ("capacity", "power"):
            getattr(spec, name).CopyFrom(getattr(info, name))
        else:
            setattr(spec, name, getattr(info, name))
    return spec.SerializeToString(deterministic=True)


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
