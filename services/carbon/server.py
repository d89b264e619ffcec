"""Carbon gRPC servicer: maps protobuf to the domain and back, nothing more."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from caspian.v1 import carbon_pb2, carbon_pb2_grpc
from services.carbon.settings import CarbonSettings
from services.common.server import GrpcServer

SERVICE_NAME = carbon_pb2.DESCRIPTOR.services_by_name["CarbonService"].full_name


class CarbonServiceServicer(carbon_pb2_grpc.CarbonServiceServicer):
    """Every method answers UNIMPLEMENTED until its issue lands."""


async def build_server(settings: CarbonSettings, registry: CollectorRegistry | None = None) -> GrpcServer:
    server = GrpcServer("carbon", settings, registry)
    server.add_service(
        carbon_pb2_grpc.add_CarbonServiceServicer_to_server, CarbonServiceServicer(), SERVICE_NAME
    )
    return server
