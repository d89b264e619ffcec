"""Hub gRPC servicer: maps protobuf to the domain and back, nothing more.

Authorization follows the shared bearer-token runtime: a caller without the admin role is confined to its
own tenant (others' AppWrappers are NOT_FOUND to it) and may not change clusters or trigger cycles.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, replace
from typing import cast

from prometheus_client import CollectorRegistry, Counter, Gauge

from caspian.v1 import hub_pb2, hub_pb2_grpc
from services.common.auth import current_principal
from services.common.clock import Clock, WallClock, clock_from_settings, load_clock_settings
from services.common.errors import InvalidArgument, PermissionDenied
from services.common.server import GrpcServer
from services.common.timeconv import timestamp_from_seconds, to_duration, to_timestamp
from services.hub.clients import ServiceClients
from services.hub.hub import Hub
from services.hub.leadership import (
    Leadership,
    LeaderWork,
    SoleReplica,
    count_fenced_writes,
    default_replica_name,
)
from services.hub.metrics import HubMetrics
from services.hub.optimizer_client import policy_number, status_number
from services.hub.peerclocks import PeerClocks
from services.hub.ports import CarbonPort, DispatcherPort, OptimizerPort
from services.hub.scheduling import CycleReport
from services.hub.settings import HubSettings
from services.hub.storagefaults import StorageHealth
from services.hub.store import FencedStore, store_from_settings
from services.hub.streambound import StreamBound
from services.hub.tenantstats import tenant_cycle, tenant_figures
from services.hub.validation import check_id_length, check_phases

SERVICE_NAME = hub_pb2.DESCRIPTOR.services_by_name["HubService"].full_name


def _scope() -> str | None:
    principal = current_principal()
    return None if principal is None or principal.admin else principal.tenant


def _namespaces() -> tuple[str, ...]:
    principal = current_principal()
    return () if principal is None else principal.namespaces


def _require_admin(action: str) -> None:
    principal = current_principal()
    if principal is not None and not principal.admin:
        raise PermissionDenied(f"{action} needs the admin role")


def cycle_summary(report: CycleReport) -> hub_pb2.CycleSummary:
    return hub_pb2.CycleSummary(
        cycle=report.cycle,
        started_at=to_timestamp(report.started_at),
        duration=to_duration(report.duration_seconds),
        considered=report.considered,
        planned=report.planned,
        unplaced=report.unplaced,
        dispatched=report.dispatched,
        unschedulable=report.unschedulable,
        solve_status=status_number(report.solve_status),
        policy=policy_number(report.policy),
        planned_gco2=report.planned_gco2,
        agnostic_gco2=report.agnostic_gco2,
        gap=report.gap if math.isfinite(report.gap) else None,
        carbon_stale=report.carbon_stale,
        carbon_blind=report.carbon_blind,
        fallback=report.fallback,
        notes=report.notes,
        outcome=report.outcome,
    )


class HubServiceServicer(hub_pb2_grpc.HubServiceServicer):
    def __init__(
        self, hub: Hub, storage: StorageHealth | None = None, replica: Leadership | SoleReplica | None = None
    ):
        self.hub = hub
        self.storage = storage or StorageHealth(_no_health)
        # Who this replica is and who leads (several replicas on PostgreSQL); one SQLite hub leads itself.
        self.replica = replica or SoleReplica(hub.settings.replica_name or default_replica_name())

    async def SubmitAppWrapper(self, request, context):
        if not request.HasField("app_wrapper"):
            raise InvalidArgument("an AppWrapper is required", field="app_wrapper")
        with self.hub.broadcaster.writing():
            message, created = await self.hub.submit(
                request.app_wrapper, request.request_id, _scope(), _namespaces()
            )
        self.storage.committed()
        return hub_pb2.SubmitAppWrapperResponse(app_wrapper=message, created=created)

    async def SubmitAppWrappers(self, request_iterator, context):
        with self.hub.broadcaster.writing():
            response = await self._submit_stream(request_iterator)
        self.storage.committed()
        return response

    async def _submit_stream(self, request_iterator) -> hub_pb2.SubmitAppWrappersResponse:
        scope = _scope()
        namespaces = _namespaces()
        bound = StreamBound.from_settings(self.hub.settings)
        batches: list[asyncio.Future] = []
        index = 0
        try:
            async for request in request_iterator:
                bound.count(request)
                if not request.items:
                    continue  # nothing to store, nothing to keep
                items = [(item.app_wrapper, item.request_id) for item in request.items]
                # Each batch goes to the store while the next one is read; one answer once all are durable.
                batches.append(asyncio.ensure_future(self.hub.submit_many(items, index, scope, namespaces)))
                index += len(items)
            response = hub_pb2.SubmitAppWrappersResponse()
            for results in await asyncio.gather(*batches):
                for result in results:
                    if result.error is None:
                        response.accepted += 1
                        response.results.add(id=result.id, created=result.created, index=result.index)
                    else:
                        response.rejected += 1
                        response.results.add(
                            id=result.id,
                            index=result.index,
                            error_code=result.error.code,
                            error_message=result.error.message,
                        )
            return response
        finally:
            for batch in batches:
                if not batch.done():
                    batch.cancel()

    async def GetAppWrapper(self, request, context):
        check_id_length(request.id)
        return hub_pb2.GetAppWrapperResponse(app_wrapper=await self.hub.get(request.id, _scope()))

    async def ListAppWrappers(self, request, context):
        page = await self.hub.list(
            phases=list(request.phases),
            cluster=request.cluster,
            tenant=request.tenant,
            page_size=request.page_size,
            page_token=request.page_token,
            scope=_scope(),
        )
        return hub_pb2.ListAppWrappersResponse(
            app_wrappers=page.items, next_page_token=page.next_page_token, total_size=page.total
        )

    async def WatchAppWrappers(self, request, context):
        check_phases(request.phases)
        events = self.hub.watch(request.since_revision, list(request.phases), request.tenant, _scope())
        async for event in events:
            response = hub_pb2.WatchAppWrappersResponse(
                type=cast(hub_pb2.WatchEventType, event.kind), revision=event.revision
            )
            if event.app_wrapper is not None:
                response.app_wrapper.CopyFrom(event.app_wrapper)
            yield response

    async def CancelAppWrapper(self, request, context):
        check_id_length(request.id)
        with self.hub.broadcaster.writing():
            message = await self.hub.cancel(request.id, request.reason, _scope())
        self.storage.committed()
        return hub_pb2.CancelAppWrapperResponse(app_wrapper=message)

    async def RegisterCluster(self, request, context):
        _require_admin("RegisterCluster")
        return hub_pb2.RegisterClusterResponse(cluster=await self.hub.register_cluster(request.cluster))

    async def UpdateCluster(self, request, context):
        _require_admin("UpdateCluster")
        cluster = await self.hub.update_cluster(request.cluster, list(request.update_paths))
        return hub_pb2.UpdateClusterResponse(cluster=cluster)

    async def DeregisterCluster(self, request, context):
        _require_admin("DeregisterCluster")
        await self.hub.deregister_cluster(request.name)
        return hub_pb2.DeregisterClusterResponse()

    async def ListClusters(self, request, context):
        return hub_pb2.ListClustersResponse(clusters=await self.hub.list_clusters())

    async def TriggerSchedule(self, request, context):
        _require_admin("TriggerSchedule")
        self.replica.require_leader("TriggerSchedule")
        report = await self.hub.trigger_schedule()
        return hub_pb2.TriggerScheduleResponse(summary=cycle_summary(report))

    async def GetStats(self, request, context):
        stats = await self.hub.stats()
        carbon = stats.carbon
        scope = _scope()
        if scope is not None:
            # A tenant sees its own AppWrappers' figures; the cluster figures are everyone's to see.
            figures = await tenant_figures(self.hub.store, scope)
            stats = replace(stats, phases=figures.phases, total=sum(figures.phases.values()))
            carbon = figures.carbon
        response = hub_pb2.GetStatsResponse(
            app_wrappers_total=stats.total,
            clusters_total=stats.clusters_total,
            clusters_ready=stats.clusters_ready,
            emitted_gco2=carbon.emitted_gco2,
            counterfactual_gco2=carbon.counterfactual_gco2,
            avoided_gco2=carbon.counterfactual_gco2 - carbon.emitted_gco2,
            planned_gco2=carbon.planned_gco2,
            now=to_timestamp(stats.now),
            leader=self.replica.leader,
            replica=self.replica.holder,
        )
        for phase in sorted(stats.phases):
            response.phases.add(phase=phase, count=stats.phases[phase])
        if stats.last_cycle is not None:
            summary = cycle_summary(stats.last_cycle)
            response.last_cycle.CopyFrom(summary if scope is None else tenant_cycle(summary))
        return response

    async def PreviewSchedule(self, request, context):
        if not request.HasField("app_wrapper"):
            raise InvalidArgument("an AppWrapper is required", field="app_wrapper")
        scope = _scope()
        if scope is not None:
            # As a submission: a tenant previews its own jobs only (its prices and quota may differ).
            if request.app_wrapper.tenant and request.app_wrapper.tenant != scope:
                raise PermissionDenied(
                    f"you may preview for tenant {scope!r} only", field="app_wrapper.tenant"
                )
            request.app_wrapper.tenant = scope
        preview = await self.hub.preview(request.app_wrapper)
        response = hub_pb2.PreviewScheduleResponse(
            placeable=preview.placeable,
            cluster=preview.cluster,
            planned_gco2=preview.planned_gco2,
            start_now_gco2=preview.start_now_gco2,
            start_now_cluster=preview.start_now_cluster,
            saving_gco2=preview.start_now_gco2 - preview.planned_gco2 if preview.placeable else 0.0,
            reason=preview.reason,
            delay=to_duration(preview.delay_seconds),
        )
        if preview.planned_start is not None:
            response.planned_start.CopyFrom(to_timestamp(preview.planned_start))
        for start, end in preview.segments:
            response.segments.add(
                cluster=preview.cluster, start=timestamp_from_seconds(start), end=timestamp_from_seconds(end)
            )
        if preview.one_piece_start is not None:
            response.one_piece_start.CopyFrom(to_timestamp(preview.one_piece_start))
            response.one_piece_gco2 = preview.one_piece_gco2
            if preview.interruptible:
                response.interruptible_saving_gco2 = preview.one_piece_gco2 - preview.planned_gco2
        return response


async def _no_health(serving: bool) -> None:
    return None


@dataclass
class HubDeps:
    """What build_server would otherwise make from settings: the clock and the three ports."""

    clock: Clock | None = None
    carbon: CarbonPort | None = None
    optimizer: OptimizerPort | None = None
    dispatcher: DispatcherPort | None = None
    follow_events: bool = True
    # The clock leases are timed by (wall time unless a test injects one); with a database URL only.
    lease_clock: Clock | None = None


async def create_hub(
    settings: HubSettings, registry: CollectorRegistry | None = None, deps: HubDeps | None = None
) -> tuple[GrpcServer, Hub]:
    deps = deps or HubDeps()
    clock = deps.clock or clock_from_settings(load_clock_settings())
    server = GrpcServer("hub", settings, registry, clock=clock)
    clients = None
    peer_clocks = PeerClocks(clock, settings.max_clock_skew_seconds, server.registry)
    carbon, optimizer, dispatcher = deps.carbon, deps.optimizer, deps.dispatcher
    if carbon is None or optimizer is None or dispatcher is None:
        clients = ServiceClients.from_settings(settings, peer_clocks)
        carbon = carbon or clients.carbon
        optimizer = optimizer or clients.optimizer
        dispatcher = dispatcher or clients.dispatcher
    hub = Hub(
        settings,
        store=store_from_settings(settings, clock.now),
        clock=clock,
        carbon=carbon,
        optimizer=optimizer,
        dispatcher=dispatcher,
        metrics=HubMetrics.create(server.registry),
        peer_clocks=peer_clocks,
    )
    quarantined = Counter(
        "caspian_hub_quarantined_records_total",
        "AppWrapper rows set aside because their stored record no longer decodes (table quarantine).",
        registry=server.registry,
    )
    hub.store.quarantine_listeners.append(lambda _id, _error: quarantined.inc())
    await hub.open()  # StoreRefused: a damaged, locked or unwritable database; the hub exits with one line

    leader = Gauge(
        "caspian_hub_leader", "1 while this hub runs the scheduling loop.", registry=server.registry
    )

    async def run_background() -> None:
        await hub.run_background(follow_events=deps.follow_events)
        leader.set(1)

    async def end_watches() -> None:
        hub.end_watches()

    server.before_drain(end_watches)
    if clients is not None:
        server.on_stop(clients.close)
    server.on_stop(hub.stop)
    replica: Leadership | None = None
    if settings.database_url:
        # Several replicas may share the database: the loop runs only on the lease holder (leadership.py).
        replica = lead_by_lease(hub, settings, deps, leader)
        count_fenced_writes(replica, server.registry)
        server.on_start(replica.start)
        server.on_stop(replica.stop)  # before hub.stop: on_stop callbacks run last-registered first
    else:
        server.on_start(run_background)
    storage = StorageHealth(server.set_serving)
    server.map_errors(storage.map)
    servicer = HubServiceServicer(hub, storage, replica)
    server.add_service(hub_pb2_grpc.add_HubServiceServicer_to_server, servicer, SERVICE_NAME)
    return server, hub


def lead_by_lease(hub: Hub, settings: HubSettings, deps: HubDeps, gauge: Gauge) -> Leadership:
    """The seam between the hub and leader election: the loop's writes carry the lease's epoch, and the loop
    and the job-event follower run only while this replica holds the lease."""
    work = LeaderWork(hub, follow_events=deps.follow_events)
    leadership = Leadership(
        hub.store,
        settings.replica_name or default_replica_name(),
        clock=deps.lease_clock or WallClock(),
        ttl=settings.leader_lease_seconds,
        on_elected=work.start,
        on_deposed=work.stop,
        on_change=gauge.set,
    )
    fenced = FencedStore(hub.store, leadership.fence, leadership.on_write)
    hub.scheduler.use_store(fenced)
    hub.reconciler.store = fenced
    return leadership


async def build_server(
    settings: HubSettings, registry: CollectorRegistry | None = None, deps: HubDeps | None = None
) -> GrpcServer:
    server, _ = await create_hub(settings, registry, deps)
    return server
