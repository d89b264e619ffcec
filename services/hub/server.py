"""Hub gRPC servicer: maps protobuf to the domain and back, nothing more."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from caspian.v1 import hub_pb2, hub_pb2_grpc
from services.common.server import GrpcServer
from services.hub.settings import HubSettings

SERVICE_NAME = hub_pb2.DESCRIPTOR.services_by_name["HubService"].full_name


class HubServiceServicer(hub_pb2_grpc.HubServiceServicer):
    """Every method answers UNIMPLEMENTED until its issue lands."""


async def build_server(settings: HubSettings, registry: CollectorRegistry | None = None) -> GrpcServer:
    server = GrpcServer("hub", settings, registry)
    server.add_service(hub_pb2_grpc.add_HubServiceServicer_to_server, HubServiceServicer(), SERVICE_NAME)
    return server
