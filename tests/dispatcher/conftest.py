"""Three in-process spoke simulators on ephemeral ports, a dispatcher over real gRPC against them through a
generated kubeconfig, and one ManualClock shared by all, so Job runtimes pass when a test says so."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

import grpc
import pytest
from prometheus_client import CollectorRegistry

from caspian.v1 import dispatcher_pb2, dispatcher_pb2_grpc
from clusters.simulator.kubeconfig import write_kubeconfig
from clusters.simulator.server import SpokeSimulator
from clusters.simulator.spec import DEFAULT_SPOKES
from services.common.clock import ManualClock
from services.dispatcher.server import build_server
from services.dispatcher.settings import DispatcherSettings

START = datetime(2023, 6, 1, tzinfo=UTC)


def fast_settings(kubeconfig: str, **overrides) -> DispatcherSettings:
    """Timeouts short enough that an outage is seen in about a second."""
    values = dict(
        port=0,
        metrics_port=-1,
        kubeconfig=kubeconfig,
        request_timeout_seconds=1.0,
        connect_timeout_seconds=0.5,
        retry_attempts=3,
        retry_base_seconds=0.02,
        retry_max_seconds=0.1,
        breaker_failures=3,
        breaker_open_seconds=1.0,
        probe_interval_seconds=0.25,
        not_ready_after_seconds=1.0,
        watch_timeout_seconds=30,
        shutdown_grace_seconds=0,
    )
    values.update(overrides)
    return DispatcherSettings(**values)


@pytest.fixture
def clock():
    return ManualClock(START)


@pytest.fixture
async def spokes(clock):
    started = {name: SpokeSimulator(name, clock, bookmark_seconds=1.0) for name in DEFAULT_SPOKES}
    try:
        for spoke in started.values():
            await spoke.start()
        yield started
    finally:
        for spoke in started.values():
            await spoke.stop()


@pytest.fixture
def kubeconfig(spokes, tmp_path):
    return write_kubeconfig(tmp_path / "spokes.kubeconfig", {name: s.url for name, s in spokes.items()})


@pytest.fixture
async def dispatcher(kubeconfig, clock):
    registry = CollectorRegistry()
    server = await build_server(fast_settings(kubeconfig), registry, clock)
    await server.start()
    channel = grpc.aio.insecure_channel(server.address)
    try:
        yield Running(server, registry, channel, dispatcher_pb2_grpc.DispatcherServiceStub(channel))
    finally:
        await channel.close()
        await server.stop(0)


class Running:
    def __init__(self, server, registry, channel, stub):
        self.server = server
        self.registry = registry
        self.channel = channel
        self.stub = stub
        self.domain = server.dispatcher

    def metric(self, name: str, labels: dict | None = None) -> float:
        return self.registry.get_sample_value(name, labels or {}) or 0.0


class EventLog:
    """Reads a WatchJobEvents stream into a list, so tests can wait for what the hub would see."""

    def __init__(self, stub):
        self.items: list[dispatcher_pb2.WatchJobEventsResponse] = []
        self.call = stub.WatchJobEvents(dispatcher_pb2.WatchJobEventsRequest(), timeout=120)
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.CancelledError):
            async for item in self.call:
                self.items.append(item)
                self._changed.set()

    async def wait_for(self, predicate, within: float = 10.0):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            found = predicate(self)
            if found:
                return found
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(f"timed out; events so far: {self.summary()}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    def jobs(self, app_wrapper_id: str | None = None) -> list[dispatcher_pb2.JobEvent]:
        return [
            item.job
            for item in self.items
            if item.HasField("job") and (app_wrapper_id is None or item.job.app_wrapper_id == app_wrapper_id)
        ]

    def phases(self, app_wrapper_id: str) -> list[str]:
        return [dispatcher_pb2.JobPhase.Name(job.phase) for job in self.jobs(app_wrapper_id)]

    def clusters(self, cluster: str) -> list[dispatcher_pb2.ClusterEvent]:
        return [
            item.cluster
            for item in self.items
            if item.HasField("cluster") and item.cluster.cluster == cluster
        ]

    def bookmarked(self) -> bool:
        return any(item.HasField("bookmark") for item in self.items)

    def summary(self) -> list[str]:
        out = []
        for item in self.items:
            if item.HasField("job"):
                out.append(
                    f"{item.job.app_wrapper_id}@{item.job.cluster}:{dispatcher_pb2.JobPhase.Name(item.job.phase)}"
                )
            elif item.HasField("cluster"):
                out.append(f"{item.cluster.cluster}:ready={item.cluster.ready}")
            else:
                out.append("BOOKMARK")
        return out

    async def close(self) -> None:
        self.call.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


@pytest.fixture
async def events(dispatcher):
    log = EventLog(dispatcher.stub)
    await log.wait_for(lambda e: e.bookmarked())
    yield log
    await log.close()
