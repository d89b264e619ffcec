"""Carbon gRPC servicer: maps protobuf to the domain and back, nothing more."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
from prometheus_client import CollectorRegistry

from caspian.v1 import carbon_pb2, carbon_pb2_grpc, common_pb2
from services.carbon.intensity import IntensityService
from services.carbon.metrics import CarbonMetrics
from services.carbon.model import Aggregation, Point, Source, SourceKind
from services.carbon.providers import Provider, build_providers
from services.carbon.settings import CarbonSettings
from services.carbon.watch import WatchHub
from services.common.clock import Clock, clock_from_settings, load_clock_settings
from services.common.server import GrpcServer
from services.common.tasks import cancel_and_wait
from services.common.timeconv import duration_seconds, from_timestamp, to_duration, to_timestamp

SERVICE_NAME = carbon_pb2.DESCRIPTOR.services_by_name["CarbonService"].full_name

_KINDS = {
    SourceKind.MEASURED: common_pb2.SOURCE_KIND_MEASURED,
    SourceKind.ESTIMATED: common_pb2.SOURCE_KIND_ESTIMATED,
    SourceKind.FORECAST: common_pb2.SOURCE_KIND_FORECAST,
    SourceKind.SYNTHETIC: common_pb2.SOURCE_KIND_SYNTHETIC,
}
_AGGREGATIONS = {
    Aggregation.POINT: common_pb2.AGGREGATION_POINT,
    Aggregation.MEAN: common_pb2.AGGREGATION_MEAN,
}


def point_pb(point: Point) -> common_pb2.IntensityPoint:
    return common_pb2.IntensityPoint(
        zone=point.zone,
        time=to_timestamp(point.time),
        duration=to_duration(point.duration),
        gco2_per_kwh=point.value,
        aggregation=_AGGREGATIONS[point.aggregation],
        estimated=point.estimated,
    )


def source_pb(source: Source) -> common_pb2.DataSource:
    return common_pb2.DataSource(
        provider=source.provider,
        kind=_KINDS[source.kind],
        synthetic=source.synthetic,
        stale=source.stale,
        age=to_duration(source.age),
        detail=source.detail,
    )


def _duration(message, name: str) -> timedelta:
    if not message.HasField(name):
        return timedelta(0)
    d = getattr(message, name)
    return timedelta(seconds=d.seconds, microseconds=d.nanos // 1000)


class CarbonServiceServicer(carbon_pb2_grpc.CarbonServiceServicer):
    def __init__(self, service: IntensityService, watch: WatchHub):
        self.service = service
        self.watch = watch

    async def ListZones(self, request, context):
        zones = [
            carbon_pb2.Zone(zone=z.zone, provider=z.provider, synthetic=z.synthetic, detail=z.detail)
            for z in self.service.zones()
        ]
        return carbon_pb2.ListZonesResponse(zones=zones)

    async def GetIntensity(self, request, context):
        point, source = await self.service.latest(request.zone)
        return carbon_pb2.GetIntensityResponse(point=point_pb(point), source=source_pb(source))

    async def GetForecast(self, request, context):
        start = from_timestamp(request.start) if request.HasField("start") else None
        forecast = await self.service.forecast(request.zone, start, _duration(request, "slot"), request.slots)
        return carbon_pb2.GetForecastResponse(
            zone=forecast.zone,
            points=[point_pb(p) for p in forecast.points],
            source=source_pb(forecast.source),
            error_model=forecast.error_model,
            relative_spread=forecast.relative_spread,
            estimate=forecast.estimate,
        )

    async def GetHistory(self, request, context):
        start = from_timestamp(request.start) if request.HasField("start") else None
        end = from_timestamp(request.end) if request.HasField("end") else None
        points, source = await self.service.history(request.zone, start, end)
        return carbon_pb2.GetHistoryResponse(
            zone=request.zone, points=[point_pb(p) for p in points], source=source_pb(source)
        )

    async def WatchIntensities(self, request, context):
        interval = duration_seconds(request.interval) if request.HasField("interval") else None
        subscription = await self.watch.subscribe(list(request.zones), interval)
        try:
            while (update := await subscription.next()) is not None:
                yield carbon_pb2.WatchIntensitiesResponse(
                    point=point_pb(update.point), source=source_pb(update.source)
                )
        finally:
            self.watch.unsubscribe(subscription)


class BackgroundRefresh:
    """Refreshes every zone's latest value while the server serves."""

    def __init__(self, service: IntensityService, seconds: float):
        self.service = service
        self.seconds = seconds
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self.service.run_refresher(self.seconds))

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        await self.service.aclose()


async def build_server(
    settings: CarbonSettings,
    registry: CollectorRegistry | None = None,
    *,
    clock: Clock | None = None,
    providers: dict[str, Provider] | None = None,
    em_clock: Clock | None = None,
    em_transport: httpx.AsyncBaseTransport | None = None,
) -> GrpcServer:
    clock = clock or clock_from_settings(load_clock_settings())
    if providers is None:
        providers = build_providers(settings, clock, em_clock=em_clock, em_transport=em_transport)
    server = GrpcServer("carbon", settings, registry, clock=clock)
    metrics = CarbonMetrics.create(server.registry)
    service = IntensityService(
        providers,
        metrics,
        stale_after=timedelta(seconds=settings.stale_after_seconds),
        fetch_timeout=settings.fetch_timeout_seconds,
        max_slots=settings.max_forecast_slots,
        max_horizon=timedelta(hours=settings.max_horizon_hours),
    )
    watch = WatchHub(
        service,
        metrics,
        default_interval=settings.watch_interval_seconds,
        min_interval=settings.watch_min_interval_seconds,
        queue_size=settings.watch_queue_size,
        max_subscribers=settings.watch_max_subscribers,
    )
    server.watch = watch  # type: ignore[attr-defined]  # tests reach the subscriptions through it
    refresh = BackgroundRefresh(service, settings.refresh_seconds)
    server.add_service(
        carbon_pb2_grpc.add_CarbonServiceServicer_to_server,
        CarbonServiceServicer(service, watch),
        SERVICE_NAME,
    )
    server.on_start(refresh.start)
    # Watch streams end with OK when shutdown begins, rather than being cut at the grace deadline.
    server.before_drain(watch.close)
    server.on_stop(refresh.stop)
    return server
