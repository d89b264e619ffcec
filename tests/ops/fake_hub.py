"""A fake HubService over real gRPC that records every request, for testing clients such as caspianctl.

It keeps AppWrappers and clusters in memory with just enough behaviour (ids, revisions, paging, phase
filters, a watch with replay + bookmark) for a client to be exercised end to end. Contract errors are
raised as services.common.errors exceptions, so the shared interceptor maps them to status codes as the
real hub's would.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime

from caspian.v1 import common_pb2, hub_pb2, hub_pb2_grpc
from services.common.errors import AlreadyExists, InvalidArgument, NotFound, Unavailable
from services.common.server import GrpcServer, ServerSettings
from services.common.timeconv import to_duration, to_timestamp

SERVICE_NAME = hub_pb2.DESCRIPTOR.services_by_name["HubService"].full_name
HUB_NOW = datetime(2023, 6, 1, 12, 0, tzinfo=UTC)


@dataclass
class Recorded:
    method: str
    request: object
    metadata: dict[str, str]


@dataclass
class FakeHub(hub_pb2_grpc.HubServiceServicer):
    now: datetime = HUB_NOW
    app_wrappers: dict[str, common_pb2.AppWrapper] = field(default_factory=dict)
    clusters: dict[str, common_pb2.ClusterInfo] = field(default_factory=dict)
    # Kube contexts the (imagined) dispatcher does not know: registered, flagged not ready.
    unknown_contexts: set[str] = field(default_factory=set)
    calls: list[Recorded] = field(default_factory=list)
    revision: int = 0
    # Watch behaviour: break the first N streams with UNAVAILABLE after sending `break_after` events.
    broken_watches: int = 0
    break_after: int = 1
    live: asyncio.Queue = field(default_factory=asyncio.Queue)
    preview: hub_pb2.PreviewScheduleResponse = field(default_factory=hub_pb2.PreviewScheduleResponse)

    def _record(self, method: str, request, context) -> None:
        metadata = {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
        self.calls.append(Recorded(method, request, metadata))

    def requests(self, method: str) -> list:
        return [c.request for c in self.calls if c.method == method]

    # ---------------------------------------------------------------- state helpers used by the tests

    def put(self, aw: common_pb2.AppWrapper) -> common_pb2.AppWrapper:
        """Store (or change) an AppWrapper with the next revision; returns the stored copy."""
        self.revision += 1
        stored = common_pb2.AppWrapper()
        stored.CopyFrom(aw)
        stored.revision = self.revision
        if not stored.status.phase:
            stored.status.phase = common_pb2.APP_WRAPPER_PHASE_PENDING
        self.app_wrappers[stored.id] = stored
        return stored

    def _accept(self, item: hub_pb2.SubmitAppWrapperRequest) -> common_pb2.AppWrapper:
        aw = item.app_wrapper
        if not aw.template.image:
            raise InvalidArgument("required", field="app_wrapper.template.image")
        if aw.template.expected_runtime.seconds <= 0:
            raise InvalidArgument("must be above zero", field="app_wrapper.template.expected_runtime")
        copy = common_pb2.AppWrapper()
        copy.CopyFrom(aw)
        if not copy.id:
            copy.id = f"aw-{len(self.app_wrappers) + 1}"
        return self.put(copy)

    # ---------------------------------------------------------------------------------- the service

    async def SubmitAppWrapper(self, request, context):
        self._record("SubmitAppWrapper", request, context)
        return hub_pb2.SubmitAppWrapperResponse(app_wrapper=self._accept(request), created=True)

    async def SubmitAppWrappers(self, request_iterator, context):
        response = hub_pb2.SubmitAppWrappersResponse()
        index = 0
        async for batch in request_iterator:
            self._record("SubmitAppWrappers", batch, context)
            for item in batch.items:
                try:
                    aw = self._accept(item)
                    response.results.add(id=aw.id, created=True, index=index)
                    response.accepted += 1
                except InvalidArgument as exc:
                    response.results.add(error_code=exc.code, error_message=exc.message, index=index)
                    response.rejected += 1
                index += 1
        return response

    async def GetAppWrapper(self, request, context):
        self._record("GetAppWrapper", request, context)
        if request.id not in self.app_wrappers:
            raise NotFound(f"appwrapper {request.id!r} not found")
        return hub_pb2.GetAppWrapperResponse(app_wrapper=self.app_wrappers[request.id])

    async def ListAppWrappers(self, request, context):
        self._record("ListAppWrappers", request, context)
        matching = [
            aw
            for aw in sorted(self.app_wrappers.values(), key=lambda a: a.id)
            if (not request.phases or aw.status.phase in request.phases)
            and (not request.tenant or aw.tenant == request.tenant)
            and (not request.cluster or aw.status.target_cluster == request.cluster)
        ]
        start = int(request.page_token or 0)
        size = request.page_size or 100
        page = matching[start : start + size]
        token = str(start + size) if start + size < len(matching) else ""
        return hub_pb2.ListAppWrappersResponse(
            app_wrappers=page, next_page_token=token, total_size=len(matching)
        )

    async def WatchAppWrappers(self, request, context):
        self._record("WatchAppWrappers", request, context)
        breaking = self.broken_watches > 0
        if breaking:
            self.broken_watches -= 1
        sent = 0
        for aw in sorted(self.app_wrappers.values(), key=lambda a: a.revision):
            if aw.revision <= request.since_revision:
                continue
            if request.phases and aw.status.phase not in request.phases:
                continue
            if breaking and sent >= self.break_after:
                raise Unavailable("hub restarting")
            yield hub_pb2.WatchAppWrappersResponse(
                type=hub_pb2.WATCH_EVENT_TYPE_ADDED, app_wrapper=aw, revision=aw.revision
            )
            sent += 1
        yield hub_pb2.WatchAppWrappersResponse(type=hub_pb2.WATCH_EVENT_TYPE_BOOKMARK, revision=self.revision)
        while True:
            event = await self.live.get()
            yield event

    def publish(self, aw: common_pb2.AppWrapper) -> None:
        """Change an AppWrapper and send the change to live watches."""
        stored = self.put(aw)
        self.live.put_nowait(
            hub_pb2.WatchAppWrappersResponse(
                type=hub_pb2.WATCH_EVENT_TYPE_MODIFIED, app_wrapper=stored, revision=stored.revision
            )
        )

    async def CancelAppWrapper(self, request, context):
        self._record("CancelAppWrapper", request, context)
        if request.id not in self.app_wrappers:
            raise NotFound(f"appwrapper {request.id!r} not found")
        aw = common_pb2.AppWrapper()
        aw.CopyFrom(self.app_wrappers[request.id])
        aw.status.phase = common_pb2.APP_WRAPPER_PHASE_CANCELLED
        aw.status.reason = request.reason
        return hub_pb2.CancelAppWrapperResponse(app_wrapper=self.put(aw))

    async def RegisterCluster(self, request, context):
        self._record("RegisterCluster", request, context)
        if request.cluster.name in self.clusters:
            raise AlreadyExists(f"cluster {request.cluster.name!r} already exists")
        # As the hub: registered ready, then probed; a kube context the dispatcher does not know is flagged.
        cluster = common_pb2.ClusterInfo()
        cluster.CopyFrom(request.cluster)
        cluster.ready = cluster.kube_context not in self.unknown_contexts
        if not cluster.ready:
            cluster.not_ready_reason = f"probe refused: unknown spoke {cluster.kube_context!r}"
        self.clusters[cluster.name] = cluster
        return hub_pb2.RegisterClusterResponse(cluster=cluster)

    async def UpdateCluster(self, request, context):
        self._record("UpdateCluster", request, context)
        if request.cluster.name not in self.clusters:
            raise NotFound(f"cluster {request.cluster.name!r} not found")
        self.clusters[request.cluster.name] = request.cluster
        return hub_pb2.UpdateClusterResponse(cluster=request.cluster)

    async def DeregisterCluster(self, request, context):
        self._record("DeregisterCluster", request, context)
        if self.clusters.pop(request.name, None) is None:
            raise NotFound(f"cluster {request.name!r} not found")
        return hub_pb2.DeregisterClusterResponse()

    async def ListClusters(self, request, context):
        self._record("ListClusters", request, context)
        return hub_pb2.ListClustersResponse(clusters=list(self.clusters.values()))

    async def GetStats(self, request, context):
        self._record("GetStats", request, context)
        counts: dict[int, int] = {}
        for aw in self.app_wrappers.values():
            counts[aw.status.phase] = counts.get(aw.status.phase, 0) + 1
        return hub_pb2.GetStatsResponse(
            phases=[hub_pb2.PhaseCount(phase=p, count=n) for p, n in sorted(counts.items())],
            app_wrappers_total=len(self.app_wrappers),
            clusters_total=len(self.clusters),
            clusters_ready=sum(1 for c in self.clusters.values() if c.ready),
            emitted_gco2=600.0,
            counterfactual_gco2=1000.0,
            avoided_gco2=400.0,
            planned_gco2=650.0,
            last_cycle=hub_pb2.CycleSummary(cycle=7, duration=to_duration(0.25), planned=3),
            now=to_timestamp(self.now),
        )

    async def PreviewSchedule(self, request, context):
        self._record("PreviewSchedule", request, context)
        return self.preview


async def start_fake_hub(fake: FakeHub | None = None) -> tuple[GrpcServer, FakeHub]:
    fake = fake or FakeHub()
    server = GrpcServer("fake-hub", ServerSettings(port=0, metrics_port=-1, shutdown_grace_seconds=0))
    server.add_service(hub_pb2_grpc.add_HubServiceServicer_to_server, fake, SERVICE_NAME)
    await server.start()
    return server, fake
