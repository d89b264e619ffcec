"""The hub's composition root: it builds the parts and answers the servicer's calls through them.

`Hub` is what the servicer calls and what an in-process user (a simulation, a benchmark) drives directly: it
owns the store, the cluster registry (`clusters.py`, cluster state and operations), submission
(`submission.py`), the watch broadcaster, the scheduler (`scheduling/`) with its loop, and the follower of
dispatcher events (`status.py`); AppWrapper reads and cancel are here.
Tenant scoping: methods take `scope`, the tenant an authenticated non-admin caller is confined to (None
means every tenant).
"""

from __future__ import annotations

import asyncio
import builtins
import logging
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from caspian.v1 import common_pb2
from services.common.clock import Clock
from services.common.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from services.hub import lifecycle
from services.hub.clusters import ClusterRegistry
from services.hub.loop import ScheduleLoop
from services.hub.metrics import HubMetrics
from services.hub.pagetoken import PageTokens
from services.hub.paging import Page
from services.hub.peerclocks import PeerClocks
from services.hub.phases import CANCELLED, Phase
from services.hub.ports import CarbonPort, DispatcherPort, OptimizerPort
from services.hub.registration import check_zone
from services.hub.scheduling import CycleReport, Preview, Scheduler, SchedulerConfig
from services.hub.settings import HubSettings
from services.hub.status import JobEventFollower, JobStatusReconciler
from services.hub.store import (
    TERMINAL_PHASES,
    AppWrapperRecord,
    CarbonTotals,
    Change,
    ChangeKind,
    ListQuery,
    Quarantined,
    Store,
)
from services.hub.submission import Admission, SubmitResult, fill_defaults, submit_batch, visible_to
from services.hub.validation import (
    Limits,
    check_app_wrapper,
    check_cluster,
)
from services.hub.watch import Broadcaster, WatchEvent, watch

log = logging.getLogger("caspian.hub")


@dataclass(frozen=True)
class Stats:
    phases: dict[int, int]
    total: int
    clusters_total: int
    clusters_ready: int
    carbon: CarbonTotals
    last_cycle: CycleReport | None
    now: datetime


class Hub:
    def __init__(
        self,
        settings: HubSettings,
        *,
        store: Store,
        clock: Clock,
        carbon: CarbonPort,
        optimizer: OptimizerPort,
        dispatcher: DispatcherPort,
        metrics: HubMetrics,
        peer_clocks: PeerClocks | None = None,
    ):
        self.settings = settings
        self.store = store
        self.clock = clock
        self.dispatcher = dispatcher
        self.carbon = carbon
        self.metrics = metrics
        self.limits = Limits.from_settings(settings)
        self.broadcaster = Broadcaster.from_settings(settings)
        self.page_tokens = PageTokens.from_settings(settings)
        self.clusters = ClusterRegistry(store, self.limits)
        self.admission = Admission(self.clusters, self.limits, settings.default_deadline_slack_seconds)
        self._counts: Counter[int] = Counter()
        self.scheduler = Scheduler(
            store=store,
            clock=clock,
            carbon=carbon,
            optimizer=optimizer,
            dispatcher=dispatcher,
            clusters=self.clusters,
            config=SchedulerConfig.from_settings(settings),
            metrics=metrics,
            peer_clocks=peer_clocks,
        )
        self.loop = ScheduleLoop(
            self.scheduler,
            clock,
            period=settings.schedule_period_seconds,
            debounce=settings.debounce_seconds,
            debounce_max=settings.debounce_max_seconds,
            backoff_initial=settings.backoff_initial_seconds,
            backoff_max=settings.backoff_max_seconds,
            enabled=settings.scheduler_enabled,
        )
        self.clusters.on_work = self.loop.poke
        self.reconciler = JobStatusReconciler(store, dispatcher, clock, self.clusters)
        self.follower = JobEventFollower(
            dispatcher,
            self.reconciler,
            backoff_initial=settings.watch_backoff_initial_seconds,
            backoff_max=settings.watch_backoff_max_seconds,
        )
        self._follower_task: asyncio.Task | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the store and load what the hub keeps in memory; nothing runs yet."""
        await self.store.open()
        self.store.add_listener(self._on_commit)
        self.broadcaster.committed_revision = self.store.head_revision
        await self.clusters.load()
        self._counts.clear()
        self._counts.update(await self.store.phase_counts())
        self.metrics.follow_phase_counts(self._counts)
        self.metrics.follow_clusters(self.clusters.clusters)
        log.info(
            "hub state loaded",
            extra={
                "app_wrappers": sum(self._counts.values()),
                "clusters": len(self.clusters.clusters()),
                "revision": self.store.head_revision,
                "schema_version": getattr(self.store, "schema_version", None),
            },
        )

    async def run_background(self, *, follow_events: bool = True) -> None:
        """Start the schedule loop and, unless told not to, the follower of dispatcher events."""
        self.loop.start()
        if follow_events and self._follower_task is None:
            self._follower_task = asyncio.create_task(self.follower.run(), name="hub-job-events")

    async def start(self, *, follow_events: bool = True) -> None:
        await self.open()
        await self.run_background(follow_events=follow_events)

    def end_watches(self) -> None:
        """End every WatchAppWrappers stream (at shutdown); clients resume from their last revision."""
        self.broadcaster.close()

    async def stop(self) -> None:
        if self._follower_task is not None:
            self._follower_task.cancel()
            await asyncio.gather(self._follower_task, return_exceptions=True)
            self._follower_task = None
        await self.loop.stop()
        await self.store.close()

    def _on_commit(self, changes: Sequence[Change]) -> None:
        self.broadcaster.publish(changes)
        added = False
        for change in changes:
            if change.kind == ChangeKind.ADDED:
                added = True
            elif change.previous_phase:
                self._counts[change.previous_phase] -= 1
            if change.kind != ChangeKind.DELETED:
                self._counts[change.app_wrapper.status.phase] += 1
        if added:
            self.loop.poke()

    # -- AppWrappers -------------------------------------------------------------------------------------

    async def submit(
        self,
        message: common_pb2.AppWrapper,
        request_id: str = "",
        scope: str | None = None,
        namespaces: Sequence[str] = (),
    ) -> tuple[common_pb2.AppWrapper, bool]:
        [result] = await self.submit_many([(message, request_id)], 0, scope, namespaces)
        if result.error is not None:
            raise result.error
        assert result.app_wrapper is not None
        return result.app_wrapper, result.created

    async def submit_many(
        self,
        items: Sequence[tuple[common_pb2.AppWrapper, str]],
        first_index: int = 0,
        scope: str | None = None,
        namespaces: Sequence[str] = (),
    ) -> list[SubmitResult]:
        return await submit_batch(
            self.admission, self.store, items, first_index, scope, namespaces, self.clock.now().timestamp()
        )

    async def get(self, app_wrapper_id: str, scope: str | None = None) -> common_pb2.AppWrapper:
        record = await self._find(app_wrapper_id, scope)
        return record.message

    async def _find(self, app_wrapper_id: str, scope: str | None) -> AppWrapperRecord:
        if not app_wrapper_id:
            raise InvalidArgument("an id is required", field="id")
        try:
            record = await self.store.get_app_wrapper(app_wrapper_id)
        except Quarantined as held:
            if visible_to(held.tenant, scope):
                raise
            record = None  # another tenant's id: not found, as for any it may not see
        if record is None or not visible_to(record.message.tenant, scope):
            raise NotFound(f"AppWrapper {app_wrapper_id!r} not found", field="id")
        return record

    async def list(
        self,
        *,
        phases: Sequence[int] = (),
        cluster: str = "",
        tenant: str = "",
        page_size: int = 0,
        page_token: str = "",
        scope: str | None = None,
    ) -> Page:
        for i, phase in enumerate(phases):
            if phase not in Phase.values() or phase == Phase.APP_WRAPPER_PHASE_UNSPECIFIED:
                raise InvalidArgument(f"unknown phase {phase}", field=f"phases[{i}]")
        tenant = _scoped_tenant(tenant, scope)
        if page_size < 0:
            raise InvalidArgument("must not be negative", field="page_size")
        size = min(page_size or self.settings.default_page_size, self.settings.max_page_size)
        after = self.page_tokens.decode(page_token, phases, cluster, tenant) if page_token else 0
        page = await self.store.list_app_wrappers(
            ListQuery(tuple(sorted(set(phases))), cluster, tenant, after, size)
        )
        token = (
            self.page_tokens.encode(page.next_after_seq, phases, cluster, tenant)
            if page.next_after_seq is not None
            else ""
        )
        return Page(page.items, token, page.total)

    def watch(
        self, since: int, phases: Sequence[int] = (), tenant: str = "", scope: str | None = None
    ) -> AsyncIterator[WatchEvent]:
        if since < 0:
            raise InvalidArgument("must not be negative", field="since_revision")
        tenant = _scoped_tenant(tenant, scope)
        return watch(self.store, self.broadcaster, since, phases, tenant)

    async def cancel(
        self, app_wrapper_id: str, reason: str = "", scope: str | None = None
    ) -> common_pb2.AppWrapper:
        record = await self._find(app_wrapper_id, scope)
        if record.phase == CANCELLED:
            return record.message
        if record.phase in TERMINAL_PHASES:
            raise FailedPrecondition(
                f"AppWrapper {app_wrapper_id!r} already finished ({Phase.Name(record.phase)})", field="id"
            )
        why = (reason or "cancelled by request")[:512]
        [updated] = await self.store.update_app_wrappers(
            [lifecycle.change(app_wrapper_id, lifecycle.cancel, reason=why, now=self.clock.now())]
        )
        if updated is None:
            raise NotFound(f"AppWrapper {app_wrapper_id!r} not found", field="id")
        if updated.phase != CANCELLED:
            raise FailedPrecondition(
                f"AppWrapper {app_wrapper_id!r} already finished ({Phase.Name(updated.phase)})", field="id"
            )
        if updated.needs_cleanup:
            status = updated.message.status
            target = self.clusters.target_of(status.target_cluster, updated.message.namespace)
            try:
                if target is not None:
                    await self.dispatcher.cancel(app_wrapper_id, target)
                await self.store.update_app_wrappers(
                    [lifecycle.change(app_wrapper_id, lifecycle.mark_cleaned)]
                )
            except Exception as exc:  # noqa: BLE001 - the next cycle deletes the Job
                log.warning(
                    "cancel on spoke failed; retried by the next cycle", extra={"error": str(exc)[:200]}
                )
        return updated.message

    # -- clusters (the registry owns them) -------------------------------------------------------------------

    async def list_clusters(self) -> builtins.list[common_pb2.ClusterInfo]:  # `list` here is Hub.list
        await self.clusters.reload()  # another replica may have registered or removed one
        return self.clusters.list_clusters()

    async def register_cluster(self, info: common_pb2.ClusterInfo) -> common_pb2.ClusterInfo:
        """Registered once its zone is checked against the carbon service; probed at once, so an unknown kube
        context is flagged in the answer (registration.py)."""
        check_cluster(info, self.limits)
        if info.name in self.clusters.clusters():
            # The same spec again answers the registered cluster, another is ALREADY_EXISTS: no new zone.
            return await self.clusters.register(info)
        await check_zone(self.carbon, info.zone, self.clock.now(), self.settings.slot_seconds, "cluster.zone")
        registered = await self.clusters.register(info)
        return await self.clusters.probe(self.dispatcher, registered.name, self.clock.now())

    async def update_cluster(
        self, info: common_pb2.ClusterInfo, paths: Sequence[str]
    ) -> common_pb2.ClusterInfo:
        if info.name in self.clusters.clusters() and (not paths or "zone" in paths):
            await check_zone(
                self.carbon, info.zone, self.clock.now(), self.settings.slot_seconds, "cluster.zone"
            )
        updated = await self.clusters.update(info, paths)
        if not paths or "kube_context" in paths:
            updated = await self.clusters.probe(self.dispatcher, updated.name, self.clock.now())
        return updated

    async def deregister_cluster(self, name: str) -> None:
        await self.clusters.deregister(name)

    # -- scheduling ---------------------------------------------------------------------------------------

    async def trigger_schedule(self) -> CycleReport:
        return await self.loop.run_now()

    async def preview(self, message: common_pb2.AppWrapper) -> Preview:
        now = self.clock.now()
        message.ClearField("status")
        check_app_wrapper(message, clusters=self.clusters.clusters(), now=now.timestamp(), limits=self.limits)
        fill_defaults(message, now.timestamp(), self.settings.default_deadline_slack_seconds)
        return await self.scheduler.preview(message)

    async def stats(self) -> Stats:
        counts = await self.store.phase_counts()
        return Stats(
            phases=counts,
            total=sum(counts.values()),
            clusters_total=len(self.clusters.clusters()),
            clusters_ready=self.clusters.ready_count(),
            carbon=await self.store.carbon_totals(),
            last_cycle=self.scheduler.last_report,
            now=self.clock.now(),
        )


# -- helpers -------------------------------------------------------------------------------------------------


def _scoped_tenant(tenant: str, scope: str | None) -> str:
    if scope is None:
        return tenant
    if tenant and tenant != scope:
        raise PermissionDenied(f"you may see tenant {scope!r} only", field="tenant")
    return scope
