"""Several hub processes on one real PostgreSQL server, beside the real carbon, optimizer, dispatcher and spokes,
and a client that submits steadily to all of them, failing over from one replica to the next."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import grpc

from caspian.v1 import common_pb2, hub_pb2, hub_pb2_grpc
from services.launcher.procs import ServiceProcess
from services.launcher.stack import Stack
from tests.reliability.stacks import start_stack
from tests.reliability.support import app_wrapper, metric
from tests.support.postgres import PostgresServer

RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED}
REPLICAS = ("hub-a", "hub-b")


def fresh_database(server: PostgresServer, name: str) -> str:
    server.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    server.psql(f"CREATE DATABASE {name}")
    return server.url(name)


def hub_env(database_url: str, lease_seconds: float) -> dict[str, str]:
    return {
        "CASPIAN_HUB_DATABASE_URL": database_url,
        "CASPIAN_HUB_DATABASE_TIMEOUT_SECONDS": "2",
        "CASPIAN_HUB_LEADER_LEASE_SECONDS": str(lease_seconds),
        "CASPIAN_HUB_REPLICA_NAME": REPLICAS[0],
    }


@dataclass
class Replicas:
    """The stack's hub (`hub-a`) and a second replica on the same database (`hub-b`)."""

    stack: Stack
    procs: dict[str, ServiceProcess]

    @classmethod
    def start(cls, workdir, *, database_url: str, lease_seconds: float, speedup: float) -> Replicas:
        stack = start_stack(
            workdir,
            speedup=speedup,
            hub={**hub_env(database_url, lease_seconds), "CASPIAN_HUB_LOG_LEVEL": "INFO"},
        )
        try:
            second = ServiceProcess(
                "services.hub", env={**stack.hub_env(), "CASPIAN_HUB_REPLICA_NAME": REPLICAS[1]}
            ).start()
        except BaseException:
            stack.stop()
            raise
        return cls(stack, {REPLICAS[0]: stack.services["hub"], REPLICAS[1]: second})

    @property
    def addresses(self) -> list[str]:
        return [p.address for p in self.procs.values()]

    def leads(self, name: str) -> bool:
        try:
            return metric(self.procs[name].metrics_address, "caspian_hub_leader") == 1.0
        except Exception:  # noqa: BLE001 - a stopped or paused replica does not answer: it does not lead
            return False

    def leader(self) -> str:
        found = [name for name in self.procs if self.leads(name)]
        return found[0] if len(found) == 1 else ""

    def alive(self, name: str) -> bool:
        proc = self.procs[name].proc
        return proc is not None and proc.poll() is None

    def signal(self, name: str, sig: signal.Signals) -> None:
        proc = self.procs[name].proc
        assert proc is not None
        os.kill(proc.pid, sig)

    def elections(self) -> int:
        """How many times a replica was elected, from the hubs' logs (restarted ones included)."""
        procs = [*self.procs.values(), *self.stack.retired]
        return sum(1 for p in procs for line in p.log_lines if '"elected leader"' in line)

    def stop(self) -> None:
        for name in self.procs:
            if self.alive(name):
                self.signal(name, signal.SIGCONT)  # a paused replica must be able to stop
        self.procs[REPLICAS[1]].terminate()
        self.stack.stop()


@dataclass
class Submitted:
    seq: int
    request: hub_pb2.SubmitAppWrapperRequest
    ack: common_pb2.AppWrapper | None = None
    attempts: int = 0


@dataclass
class SteadyClient:
    """Submits one AppWrapper every `interval` seconds, each with its request id, to the replicas in turn; a
    call that fails with UNAVAILABLE, DEADLINE_EXCEEDED or CANCELLED is retried on the next replica until
    `give_up_s` after the start. Every other status is recorded as an error."""

    addresses: list[str]
    tenant: str
    now: datetime
    total: int
    interval: float
    speedup: float = 1.0  # of the hub's clock: each request is built for the hub's now when it is first sent
    give_up_s: float = 120.0
    call_timeout: float = 3.0
    items: list[Submitted] = field(default_factory=list)
    codes: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    unavailable_messages: set[str] = field(default_factory=set)

    def request(self, seq: int, elapsed_s: float = 0.0) -> hub_pb2.SubmitAppWrapperRequest:
        message = app_wrapper(
            now=self.now + timedelta(seconds=elapsed_s * self.speedup), tenant=self.tenant, runtime_s=600,
            cpu_millis=100, memory_bytes=128 << 20, slack_s=3600, labels={"seq": str(seq)},
        )  # fmt: skip
        return hub_pb2.SubmitAppWrapperRequest(app_wrapper=message, request_id=f"{self.tenant}-{seq:05d}")

    @property
    def acknowledged(self) -> list[Submitted]:
        return [item for item in self.items if item.ack is not None]

    async def run(self) -> None:
        channels = [grpc.aio.insecure_channel(a) for a in self.addresses]
        stubs = [hub_pb2_grpc.HubServiceStub(c) for c in channels]
        began = time.monotonic()
        give_up_at = began + self.give_up_s
        try:
            tasks = []
            for seq in range(self.total):
                item = Submitted(seq, self.request(seq, time.monotonic() - began))
                self.items.append(item)
                tasks.append(asyncio.create_task(self._submit(stubs, item, give_up_at)))
                await asyncio.sleep(self.interval)
            await asyncio.gather(*tasks)
        finally:
            for channel in channels:
                await channel.close()

    async def _submit(self, stubs, item: Submitted, give_up_at: float) -> None:
        while True:
            stub = stubs[(item.seq + item.attempts) % len(stubs)]
            item.attempts += 1
            try:
                response = await stub.SubmitAppWrapper(item.request, timeout=self.call_timeout)
            except grpc.aio.AioRpcError as exc:
                self.codes[exc.code().name] = self.codes.get(exc.code().name, 0) + 1
                if exc.code() == grpc.StatusCode.UNAVAILABLE:
                    self.unavailable_messages.add((exc.details() or "")[:80])
                if exc.code() not in RETRYABLE or time.monotonic() > give_up_at:
                    self.errors.append(f"{item.seq}: {exc.code().name}: {exc.details()}")
                    return
                await asyncio.sleep(0.1)
                continue
            self.codes["OK"] = self.codes.get("OK", 0) + 1
            item.ack = response.app_wrapper
            return
