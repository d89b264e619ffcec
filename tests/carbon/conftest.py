import grpc
import pytest
from prometheus_client import CollectorRegistry

from caspian.v1 import carbon_pb2_grpc
from services.carbon import settings as carbon_settings
from services.carbon.server import build_server
from services.common.clock import ManualClock
from tests.carbon.fake_em import FakeElectricityMaps
from tests.carbon.support import (
    T0,
    Running,
)

BASE_ENV = {
    "CASPIAN_CARBON_PORT": "0",
    "CASPIAN_CARBON_METRICS_PORT": "-1",
    "CASPIAN_CARBON_REFRESH_SECONDS": "3600",
}


@pytest.fixture
def clock():
    return ManualClock(T0)


@pytest.fixture
async def start_carbon():
    """Start a carbon server on an ephemeral port: `await start_carbon(env, clock=...)`."""
    running: list[Running] = []

    async def start(env: dict | None = None, **kwargs) -> Running:
        settings = carbon_settings.load({**BASE_ENV, **(env or {})})
        registry = CollectorRegistry()
        kwargs.setdefault("clock", ManualClock(T0))
        server = await build_server(settings, registry, **kwargs)
        await server.start()
        channel = grpc.aio.insecure_channel(server.address)
        run = Running(server, channel, carbon_pb2_grpc.CarbonServiceStub(channel), registry)
        running.append(run)
        return run

    yield start
    for run in running:
        await run.channel.close()
        await run.server.stop(0)


@pytest.fixture
def fake_em():
    fake = FakeElectricityMaps().start()
    yield fake
    fake.stop()
