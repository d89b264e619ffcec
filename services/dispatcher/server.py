"""Dispatcher gRPC servicer: maps protobuf to the domain and back, nothing more."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from caspian.v1 import dispatcher_pb2, dispatcher_pb2_grpc
from services.common.server import GrpcServer
from services.dispatcher.settings import DispatcherSettings

SERVICE_NAME = dispatcher_pb2.DESCRIPTOR.services_by_name["DispatcherService"].full_name


class DispatcherServiceServicer(dispatcher_pb2_grpc.DispatcherServiceServicer):
    """Every method answers UNIMPLEMENTED until its issue lands."""


async def build_server(settings: DispatcherSettings, registry: CollectorRegistry | None = None) -> GrpcServer:
    server = GrpcServer("dispatcher", settings, registry)
    server.add_service(
        dispatcher_pb2_grpc.add_DispatcherServiceServicer_to_server, DispatcherServiceServicer(), SERVICE_NAME
    )
    return server
