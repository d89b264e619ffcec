"""gRPC adapters for the hub's ports: channels made once, a deadline on every call.

A failed call raises `services.common.errors.Unavailable` naming the service and status, so the scheduler
sees "the service did not answer" without knowing about gRPC.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import grpc

from caspian.v1 import (
    carbon_pb2,
    carbon_pb2_grpc,
    common_pb2,
    dispatcher_pb2,
    dispatcher_pb2_grpc,
)
from services.common.channels import ClientTLS, open_channel
from services.common.errors import DEADLINE_PASSED
from services.common.timeconv import duration_seconds, from_timestamp, to_duration, to_timestamp
from services.hub.optimizer_client import GrpcOptimizer
from services.hub.peerclocks import PeerClocks
from services.hub.ports import (
    Capacity,
    ClusterProbe,
    ClusterStatus,
    DeadlinePassed,
    DispatcherEvent,
    DispatchResult,
    DispatchTarget,
    Forecast,
    IntensitySample,
    JobState,
    JobStatus,
    Refused,
    SnapshotEnd,
)
from services.hub.rpcerrors import Metadata, reason_of, unavailable

E = TypeVar("E", bound=enum.Enum)


def _time(ts) -> datetime | None:
    return from_timestamp(ts) if ts.seconds or ts.nanos else None


class GrpcCarbon:
    def __init__(self, channel: grpc.aio.Channel, timeout: float, metadata: Metadata = ()):
        self._stub = carbon_pb2_grpc.CarbonServiceStub(channel)
        self.timeout = timeout
        self.metadata = metadata

    async def forecast(self, zone: str, start: datetime, slot_seconds: float, slots: int) -> Forecast:
        request = carbon_pb2.GetForecastRequest(
            zone=zone, start=to_timestamp(start), slot=to_duration(slot_seconds), slots=slots
        )
        try:
            response = await self._stub.GetForecast(request, timeout=self.timeout, metadata=self.metadata)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                # Refused, not down: a zone the carbon service does not know.
                raise Refused(f"carbon: {exc.code().name}: {exc.details()}") from None
            raise unavailable("carbon", exc) from None
        return Forecast(
            zone=zone,
            start=start,
            slot_seconds=slot_seconds,
            values=tuple(p.gco2_per_kwh for p in response.points),
            provider=response.source.provider,
            stale=response.source.stale,
            age_seconds=duration_seconds(response.source.age),
            relative_spread=tuple(response.relative_spread),
            estimate=tuple(response.estimate),
        )

    async def history(self, zone: str, start: datetime, end: datetime) -> list[IntensitySample]:
        request = carbon_pb2.GetHistoryRequest(zone=zone, start=to_timestamp(start), end=to_timestamp(end))
        try:
            response = await self._stub.GetHistory(request, timeout=self.timeout, metadata=self.metadata)
        except grpc.aio.AioRpcError as exc:
            raise unavailable("carbon", exc) from None
        points = sorted(response.points, key=lambda p: (p.time.seconds, p.time.nanos))
        samples = []
        for i, point in enumerate(points):
            seconds = duration_seconds(point.duration)
            if seconds <= 0:
                # A point value holds until the next one (hourly data when it is the last).
                nxt = points[i + 1] if i + 1 < len(points) else None
                seconds = (
                    (from_timestamp(nxt.time) - from_timestamp(point.time)).total_seconds() if nxt else 3600.0
                )
            samples.append(IntensitySample(from_timestamp(point.time), seconds, point.gco2_per_kwh))
        return samples


def _job_state(phase: int) -> JobState:
    try:
        return JobState(phase)
    except ValueError:
        return JobState.UNKNOWN


def _capacity(resources: common_pb2.Resources, present: bool) -> Capacity | None:
    return Capacity.of(resources) if present else None


class GrpcDispatcher:
    def __init__(
        self,
        channel: grpc.aio.Channel,
        timeout: float,
        watch_seconds: float = 3600.0,
        metadata: Metadata = (),
    ):
        self._stub = dispatcher_pb2_grpc.DispatcherServiceStub(channel)
        self.timeout = timeout
        self.watch_seconds = watch_seconds
        self.metadata = metadata

    async def probe(self, clusters: Sequence[str]) -> list[ClusterProbe]:
        request = dispatcher_pb2.ProbeClustersRequest(clusters=list(clusters))
        try:
            response = await self._stub.ProbeClusters(request, timeout=self.timeout, metadata=self.metadata)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                # Refused, not down: a spoke the dispatcher does not know.
                raise Refused(f"dispatcher: {exc.code().name}: {exc.details()}") from None
            raise unavailable("dispatcher", exc) from None
        return [
            ClusterProbe(
                cluster=p.cluster,
                ready=p.ready,
                reason=p.reason,
                allocatable=_capacity(p.allocatable, p.HasField("allocatable")),
                free=_capacity(p.free, p.HasField("free")),
            )
            for p in response.clusters
        ]

    async def dispatch(
        self, app_wrapper: common_pb2.AppWrapper, target: DispatchTarget, gate_opened_at: datetime
    ) -> DispatchResult:
        request = dispatcher_pb2.DispatchJobRequest(
            app_wrapper=app_wrapper,
            cluster=target.cluster,
            kube_context=target.kube_context,
            namespace=target.namespace,
            gate_opened_at=to_timestamp(gate_opened_at),
            # An interruptible job checkpoints by contract (common.proto, Interruptible): it resumes where
            # it stopped. Its Job is created running (suspended false): the gate opens at the first segment.
            checkpointing=app_wrapper.HasField("interruptible"),
        )
        try:
            response = await self._stub.DispatchJob(request, timeout=self.timeout, metadata=self.metadata)
        except grpc.aio.AioRpcError as exc:
            if reason_of(exc) == DEADLINE_PASSED:
                raise DeadlinePassed(f"dispatcher: {exc.details()}") from None
            raise unavailable("dispatcher", exc) from None
        return DispatchResult(response.job_name, response.namespace, response.created)

    async def cancel(self, app_wrapper_id: str, target: DispatchTarget) -> bool:
        request = dispatcher_pb2.CancelJobRequest(
            app_wrapper_id=app_wrapper_id,
            cluster=target.cluster,
            kube_context=target.kube_context,
            namespace=target.namespace,
        )
        try:
            response = await self._stub.CancelJob(request, timeout=self.timeout, metadata=self.metadata)
        except grpc.aio.AioRpcError as exc:
            raise unavailable("dispatcher", exc) from None
        return response.deleted

    async def set_suspended(self, app_wrapper_id: str, target: DispatchTarget, suspend: bool) -> bool:
        request = dispatcher_pb2.SetJobSuspendedRequest(
            app_wrapper_id=app_wrapper_id,
            cluster=target.cluster,
            kube_context=target.kube_context,
            namespace=target.namespace,
            suspend=suspend,
        )
        try:
            response = await self._stub.SetJobSuspended(request, timeout=self.timeout, metadata=self.metadata)
        except grpc.aio.AioRpcError as exc:
            if reason_of(exc) == DEADLINE_PASSED:
                raise DeadlinePassed(f"dispatcher: {exc.details()}") from None
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION):
                raise Refused(f"dispatcher: {exc.code().name}: {exc.details()}") from None
            raise unavailable("dispatcher", exc) from None
        return response.changed

    async def job_events(self) -> AsyncIterator[DispatcherEvent]:
        # A long-lived stream still carries a deadline: when it expires the hub reconnects and reconciles
        # from a fresh snapshot.
        call = self._stub.WatchJobEvents(
            dispatcher_pb2.WatchJobEventsRequest(), timeout=self.watch_seconds, metadata=self.metadata
        )
        try:
            async for response in call:
                kind = response.WhichOneof("event")
                if kind == "job":
                    job = response.job
                    yield JobStatus(
                        app_wrapper_id=job.app_wrapper_id,
                        cluster=job.cluster,
                        state=_job_state(job.phase),
                        job_name=job.job_name,
                        namespace=job.namespace,
                        reason=job.reason,
                        start_time=_time(job.start_time),
                        completion_time=_time(job.completion_time),
                        observed_at=_time(job.observed_at),
                        suspended_at=_time(job.suspended_at),
                        suspensions=job.suspensions,
                        interruptible=job.interruptible,
                        checkpointing=job.checkpointing,
                    )
                elif kind == "cluster":
                    c = response.cluster
                    yield ClusterStatus(c.cluster, c.ready, c.reason, _time(c.observed_at))
                elif kind == "bookmark":
                    yield SnapshotEnd()
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                return
            raise unavailable("dispatcher", exc) from None
        finally:
            call.cancel()


@dataclass
class ServiceClients:
    """The three adapters on channels opened once; close() at shutdown."""

    carbon: GrpcCarbon
    optimizer: GrpcOptimizer
    dispatcher: GrpcDispatcher
    channels: tuple[grpc.aio.Channel, ...]

    @classmethod
    def from_settings(cls, settings, peer_clocks: PeerClocks | None = None) -> ServiceClients:
        """With `peer_clocks`, every unary call also measures the peer's clock skew (services/hub/peerclocks.py)."""
        probe = peer_clocks.probe if peer_clocks is not None else (lambda _peer: ())
        tls: ClientTLS = settings.client_tls()
        metadata: Metadata = ()
        if settings.service_token_file:
            with open(settings.service_token_file, encoding="utf-8") as fh:
                metadata = (("authorization", f"Bearer {fh.read().strip()}"),)
        carbon = open_channel(settings.carbon_address, tls=tls, interceptors=probe("carbon"))
        optimizer = open_channel(
            settings.optimizer_address,
            round_robin=settings.optimizer_round_robin,
            tls=tls,
            interceptors=probe("optimizer"),
        )
        dispatcher = open_channel(settings.dispatcher_address, tls=tls, interceptors=probe("dispatcher"))
        return cls(
            carbon=GrpcCarbon(carbon, settings.carbon_timeout_seconds, metadata),
            optimizer=GrpcOptimizer(optimizer, settings.optimizer_timeout_seconds, metadata),
            dispatcher=GrpcDispatcher(
                dispatcher, settings.dispatcher_timeout_seconds, settings.dispatcher_watch_seconds, metadata
            ),
            channels=(carbon, optimizer, dispatcher),
        )

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close()
