"""The console's only way to the system: the hub's and the carbon service's public gRPC APIs.

Every hub call carries the caller's own bearer token, so the hub decides what the caller may see (a tenant its
own AppWrappers, an admin all); the console keeps no copy of the store and works against any hub replica.
Channels are made once and reused; every unary call has a deadline.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import grpc

from caspian.v1 import carbon_pb2, carbon_pb2_grpc, common_pb2, hub_pb2, hub_pb2_grpc
from services.common.channels import ClientTLS, open_channel
from services.common.timeconv import to_duration, to_timestamp

LIST_PAGE = 1000


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


class Gateway:
    def __init__(
        self,
        hub_address: str,
        carbon_address: str,
        *,
        timeout: float = 10.0,
        tls: ClientTLS | None = None,
        carbon_token: str = "",
    ):
        self.timeout = timeout
        self.hub_channel = open_channel(hub_address, tls=tls)
        self.carbon_channel = open_channel(carbon_address, tls=tls)
        self.hub = hub_pb2_grpc.HubServiceStub(self.hub_channel)
        self.carbon = carbon_pb2_grpc.CarbonServiceStub(self.carbon_channel)
        self.carbon_metadata = bearer(carbon_token)

    async def close(self) -> None:
        await self.hub_channel.close()
        await self.carbon_channel.close()

    # -- hub -------------------------------------------------------------------------------------------
    async def stats(self, token: str) -> hub_pb2.GetStatsResponse:
        return await self.hub.GetStats(
            hub_pb2.GetStatsRequest(), timeout=self.timeout, metadata=bearer(token)
        )

    async def clusters(self, token: str) -> list[common_pb2.ClusterInfo]:
        response = await self.hub.ListClusters(
            hub_pb2.ListClustersRequest(), timeout=self.timeout, metadata=bearer(token)
        )
        return list(response.clusters)

    async def app_wrappers(self, token: str, tenant: str = "") -> list[common_pb2.AppWrapper]:
        """Every AppWrapper the caller may see, page by page."""
        items: list[common_pb2.AppWrapper] = []
        page_token = ""
        while True:
            response = await self.hub.ListAppWrappers(
                hub_pb2.ListAppWrappersRequest(tenant=tenant, page_size=LIST_PAGE, page_token=page_token),
                timeout=self.timeout,
                metadata=bearer(token),
            )
            items.extend(response.app_wrappers)
            page_token = response.next_page_token
            if not page_token:
                return items

    async def app_wrapper(self, token: str, app_wrapper_id: str) -> common_pb2.AppWrapper:
        response = await self.hub.GetAppWrapper(
            hub_pb2.GetAppWrapperRequest(id=app_wrapper_id), timeout=self.timeout, metadata=bearer(token)
        )
        return response.app_wrapper

    def watch(
        self, token: str, since_revision: int = 0
    ) -> grpc.aio.UnaryStreamCall[hub_pb2.WatchAppWrappersRequest, hub_pb2.WatchAppWrappersResponse]:
        """A WatchAppWrappers stream with no deadline; the caller cancels it."""
        return self.hub.WatchAppWrappers(
            hub_pb2.WatchAppWrappersRequest(since_revision=since_revision), metadata=bearer(token)
        )

    async def preview(
        self, token: str, app_wrapper: common_pb2.AppWrapper
    ) -> hub_pb2.PreviewScheduleResponse:
        return await self.hub.PreviewSchedule(
            hub_pb2.PreviewScheduleRequest(app_wrapper=app_wrapper),
            timeout=self.timeout,
            metadata=bearer(token),
        )

    async def submit(
        self, token: str, app_wrapper: common_pb2.AppWrapper, request_id: str
    ) -> hub_pb2.SubmitAppWrapperResponse:
        return await self.hub.SubmitAppWrapper(
            hub_pb2.SubmitAppWrapperRequest(app_wrapper=app_wrapper, request_id=request_id),
            timeout=self.timeout,
            metadata=bearer(token),
        )

    # -- carbon ----------------------------------------------------------------------------------------
    async def intensity(self, zone: str) -> carbon_pb2.GetIntensityResponse:
        return await self.carbon.GetIntensity(
            carbon_pb2.GetIntensityRequest(zone=zone), timeout=self.timeout, metadata=self.carbon_metadata
        )

    async def history(self, zone: str, start: datetime, end: datetime) -> carbon_pb2.GetHistoryResponse:
        return await self.carbon.GetHistory(
            carbon_pb2.GetHistoryRequest(zone=zone, start=to_timestamp(start), end=to_timestamp(end)),
            timeout=self.timeout,
            metadata=self.carbon_metadata,
        )

    async def forecast(self, zone: str, slot: timedelta, slots: int) -> carbon_pb2.GetForecastResponse:
        return await self.carbon.GetForecast(
            carbon_pb2.GetForecastRequest(zone=zone, slot=to_duration(slot), slots=slots),
            timeout=self.timeout,
            metadata=self.carbon_metadata,
        )

    def watch_intensities(self, zones: list[str]) -> AsyncIterator[carbon_pb2.WatchIntensitiesResponse]:
        return self.carbon.WatchIntensities(
            carbon_pb2.WatchIntensitiesRequest(zones=zones), metadata=self.carbon_metadata
        )
