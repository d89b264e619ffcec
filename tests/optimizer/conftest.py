import grpc
import pytest
from prometheus_client import CollectorRegistry

from caspian.v1 import optimizer_pb2_grpc
from services.optimizer.server import build_server
from services.optimizer.settings import OptimizerSettings

MAX_JOBS = 20


@pytest.fixture
async def optimizer():
    """A real optimizer server on an ephemeral port: (stub, registry, server)."""
    registry = CollectorRegistry()
    settings = OptimizerSettings(port=0, metrics_port=-1, max_jobs=MAX_JOBS, time_limit_seconds=20.0)
    server = await build_server(settings, registry)
    await server.start()
    channel = grpc.aio.insecure_channel(server.address)
    yield optimizer_pb2_grpc.OptimizerServiceStub(channel), registry, server
    await channel.close()
    await server.stop(0)
