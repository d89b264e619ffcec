"""Optimizer gRPC servicer: maps protobuf to the domain and back, nothing more."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from caspian.v1 import optimizer_pb2, optimizer_pb2_grpc
from services.common.server import GrpcServer
from services.optimizer.settings import OptimizerSettings

SERVICE_NAME = optimizer_pb2.DESCRIPTOR.services_by_name["OptimizerService"].full_name


class OptimizerServiceServicer(optimizer_pb2_grpc.OptimizerServiceServicer):
    """Every method answers UNIMPLEMENTED until its issue lands."""


async def build_server(settings: OptimizerSettings, registry: CollectorRegistry | None = None) -> GrpcServer:
    server = GrpcServer("optimizer", settings, registry)
    server.add_service(
        optimizer_pb2_grpc.add_OptimizerServiceServicer_to_server, OptimizerServiceServicer(), SERVICE_NAME
    )
    return server
