"""Fixtures: fakes of the three services, and an in-process hub on a ManualClock, all over real gRPC."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from prometheus_client import CollectorRegistry

from caspian.v1 import common_pb2, hub_pb2, hub_pb2_grpc
from services.common.clock import ManualClock
from services.common.timeconv import to_duration, to_timestamp
from services.hub.hub import Hub
from services.hub.server import HubDeps, create_hub
from services.hub.settings import HubSettings
from tests.hub.fakes import Fakes

START = datetime(2023, 6, 1, tzinfo=UTC)
GIB = 1 << 30
CLUSTERS = (("carbon-kr", "KR"), ("carbon-jp", "JP-TK"), ("carbon-cn", "CN"))


def hub_settings(tmp_path, fakes: Fakes, **overrides) -> HubSettings:
    base = HubSettings(
        port=0,
        metrics_port=-1,
        shutdown_grace_seconds=0.5,
        db_path=str(tmp_path / "hub.db"),
        carbon_address=fakes.carbon_address,
        optimizer_address=fakes.optimizer_address,
        dispatcher_address=fakes.dispatcher_address,
        carbon_timeout_seconds=2.0,
        optimizer_timeout_seconds=2.0,
        dispatcher_timeout_seconds=2.0,
        scheduler_enabled=False,
        watch_backoff_initial_seconds=0.05,
        watch_backoff_max_seconds=0.2,
        slot_seconds=900,
        horizon_slots=96,
    )
    return replace(base, **overrides)


@dataclass
class Harness:
    hub: Hub
    server: object
    stub: hub_pb2_grpc.HubServiceStub
    channel: grpc.aio.Channel
    clock: ManualClock
    fakes: Fakes
    registry: CollectorRegistry

    def metric(self, name: str, labels: dict | None = None) -> float:
        value = self.registry.get_sample_value(name, labels or {})
        return 0.0 if value is None else value

    async def submit(self, **kwargs) -> common_pb2.AppWrapper:
        request_id = kwargs.pop("request_id", "")
        response = await self.stub.SubmitAppWrapper(
            hub_pb2.SubmitAppWrapperRequest(
                app_wrapper=app_wrapper(self.clock, **kwargs), request_id=request_id
            ),
            timeout=10,
        )
        return response.app_wrapper

    async def get(self, app_wrapper_id: str) -> common_pb2.AppWrapper:
        return (
            await self.stub.GetAppWrapper(hub_pb2.GetAppWrapperRequest(id=app_wrapper_id), timeout=10)
        ).app_wrapper

    async def cycle(self) -> hub_pb2.CycleSummary:
        return (await self.stub.TriggerSchedule(hub_pb2.TriggerScheduleRequest(), timeout=20)).summary

    async def register_clusters(self, cpu_millis: int = 16000) -> None:
        for name, zone in CLUSTERS:
            await self.stub.RegisterCluster(
                hub_pb2.RegisterClusterRequest(cluster=cluster_info(name, zone, cpu_millis)), timeout=10
            )


def cluster_info(name: str, zone: str, cpu_millis: int = 16000) -> common_pb2.ClusterInfo:
    return common_pb2.ClusterInfo(
        name=name,
        zone=zone,
        capacity=common_pb2.Resources(cpu_millis=cpu_millis, memory_bytes=64 * GIB),
        power=common_pb2.PowerModel(watts_per_core=10.0, pue=1.0),
    )


def app_wrapper(clock, **kwargs) -> common_pb2.AppWrapper:
    now = clock.now()
    runtime = kwargs.pop("runtime", 3600)
    deadline_in = kwargs.pop("deadline_in", 12 * 3600)
    cpu = kwargs.pop("cpu_millis", 1000)
    message = common_pb2.AppWrapper(
        id=kwargs.pop("id", ""),
        tenant=kwargs.pop("tenant", "team-a"),
        template=common_pb2.JobTemplate(
            image=kwargs.pop("image", "ghcr.io/caspian/sleep:1.0"),
            resources=common_pb2.Resources(cpu_millis=cpu, memory_bytes=GIB),
            expected_runtime=to_duration(runtime),
        ),
    )
    if deadline_in is not None:
        message.deadline.CopyFrom(to_timestamp(now + timedelta(seconds=deadline_in)))
    for key, value in kwargs.items():
        if isinstance(value, list):
            getattr(message, key).extend(value)
        elif hasattr(value, "CopyFrom"):
            getattr(message, key).CopyFrom(value)
        else:
            setattr(message, key, value)
    return message


async def phase_is(harness: Harness, app_wrapper_id: str, phase: int) -> bool:
    return (await harness.get(app_wrapper_id)).status.phase == phase


@pytest.fixture
async def fakes():
    started = await Fakes.start()
    yield started
    await started.stop()


@pytest.fixture
async def make_harness(tmp_path, fakes):
    """Start hubs on the fakes; each argument overrides a HubSettings field (plus clock, follow_events, lease_clock)."""
    made: list[Harness] = []

    async def make(**overrides) -> Harness:
        clock = overrides.pop("clock", None) or ManualClock(START)
        follow = overrides.pop("follow_events", True)
        lease_clock = overrides.pop("lease_clock", None)
        registry = CollectorRegistry()
        settings = hub_settings(tmp_path, fakes, **overrides)
        server, hub = await create_hub(
            settings, registry, HubDeps(clock=clock, follow_events=follow, lease_clock=lease_clock)
        )
        await server.start()
        channel = grpc.aio.insecure_channel(server.address)
        harness = Harness(hub, server, hub_pb2_grpc.HubServiceStub(channel), channel, clock, fakes, registry)
        made.append(harness)
        return harness

    yield make
    for harness in made:
        await harness.channel.close()
        await harness.server.stop(0)


@pytest.fixture
async def harness(make_harness):
    return await make_harness()
