"""gRPC adapters for the hub's ports: channels made once, a deadline on every call.

A failed call raises `services.common.errors.Unavailable` naming the service and status, so the scheduler
sees "the service did not answer" without knowing about gRPC.
"""

from __future__ import annotations

import enum
import math
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar, cast

import grpc

from caspian.v1 import (
    carbon_pb2,
    carbon_pb2_grpc,
    common_pb2,
    dispatcher_pb2,
    dispatcher_pb2_grpc,
    optimizer_pb2,
    optimizer_pb2_grpc,
)
from services.common.channels import ClientTLS, open_channel
from services.common.energy import Power
from services.common.errors import DEADLINE_PASSED, REASON_KEY, Unavailable
from services.common.timeconv import duration_seconds, from_timestamp, to_duration, to_timestamp
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
from services.optimizer import problem as placement

Metadata = tuple[tuple[str, str], ...]
E = TypeVar("E", bound=enum.Enum)


def _unavailable(service: str, exc: grpc.aio.AioRpcError) -> Unavailable:
    return Unavailable(f"{service}: {exc.code().name}: {exc.details()}")


def reason_of(exc: grpc.aio.AioRpcError) -> str:
    """The machine-readable reason a service sent beside its status (trailing metadata `caspian-reason`)."""
    for key, value in exc.trailing_metadata() or ():
        if key == REASON_KEY:
            return value if isinstance(value, str) else value.decode()
    return ""


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
            raise _unavailable("carbon", exc) from None
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
            raise _unavailable("carbon", exc) from None
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


class GrpcOptimizer:
    def __init__(self, channel: grpc.aio.Channel, timeout: float, metadata: Metadata = ()):
        self._stub = optimizer_pb2_grpc.OptimizerServiceStub(channel)
        self.timeout = timeout
        self.metadata = metadata

    async def solve(self, problem: placement.Problem, options: placement.Options) -> placement.Result:
        request = solve_request(problem, options)
        try:
            response = await self._stub.Solve(request, timeout=self.timeout, metadata=self.metadata)
        except grpc.aio.AioRpcError as exc:
            raise _unavailable("optimizer", exc) from None
        return solve_result(response, options)


# -- the optimizer's domain types <-> its contract --------------------------------------------------------------
# Enum numbers come from the contract's descriptors by name (POLICY_<NAME>, SOLVE_STATUS_<NAME>, ...), so a
# member added on one side and not the other fails here (and in tests/hub/test_optimizer_port.py).


def enum_number(enum_type, prefix: str, member: enum.Enum) -> int:
    return enum_type.Value(prefix + member.name)


def enum_member(enum_type, prefix: str, domain: type[E], number: int) -> E | None:
    """The domain member of a contract enum number; None for the UNSPECIFIED zero value."""
    if number == 0:
        return None
    return domain[enum_type.Name(number).removeprefix(prefix)]


# The generated stubs type an enum's Value() as int but its message fields as the enum class: hence the casts.
def policy_number(policy: placement.Policy | None) -> optimizer_pb2.Policy:
    return (
        cast(optimizer_pb2.Policy, enum_number(optimizer_pb2.Policy, "POLICY_", policy))
        if policy
        else optimizer_pb2.POLICY_UNSPECIFIED
    )


def status_number(status: placement.Status | None) -> optimizer_pb2.SolveStatus:
    if status is None:
        return optimizer_pb2.SOLVE_STATUS_UNSPECIFIED
    return cast(optimizer_pb2.SolveStatus, enum_number(optimizer_pb2.SolveStatus, "SOLVE_STATUS_", status))


def _resources_pb(r: placement.Resources) -> common_pb2.Resources:
    return common_pb2.Resources(cpu_millis=r.cpu_millis, memory_bytes=r.memory_bytes, gpus=r.gpus)


def _power_pb(p: Power) -> common_pb2.PowerModel:
    return common_pb2.PowerModel(
        idle_watts=p.idle_watts,
        peak_watts=p.peak_watts,
        watts_per_core=p.watts_per_core,
        watts_per_gpu=p.watts_per_gpu,
        watts_per_gib=p.watts_per_gib,
        pue=p.pue,
    )


def solve_request(problem: placement.Problem, options: placement.Options) -> optimizer_pb2.SolveRequest:
    """The request for a problem. The solver is left to the service (the hub has no say in it)."""
    grid = problem.grid
    request = optimizer_pb2.SolveRequest(
        grid=optimizer_pb2.TimeGrid(
            start=to_timestamp(grid.start), slot=to_duration(grid.slot), slots=grid.slots
        )
    )
    for c in problem.clusters:
        request.clusters.add(
            name=c.name, zone=c.zone, capacity=_resources_pb(c.capacity), power=_power_pb(c.power)
        )
    for f in problem.forecasts:
        request.forecasts.add(
            cluster=f.cluster, gco2_per_kwh=f.gco2_per_kwh, relative_spread=f.relative_spread
        )
    for r in problem.reservations:
        request.reservations.add(
            cluster=r.cluster,
            resources=_resources_pb(r.resources),
            start_slot=r.start_slot,
            end_slot=r.end_slot,
            job_id=r.job_id,
        )
    for job in problem.jobs:
        added = request.jobs.add(
            id=job.id,
            resources=_resources_pb(job.resources),
            runtime=to_duration(job.runtime),
            required_clusters=job.required_clusters,
            preferred_clusters=job.preferred_clusters,
            excluded_clusters=job.excluded_clusters,
            priority=job.priority,
            current_cluster=job.current_cluster,
            home_cluster=job.home_cluster,
        )
        if job.earliest_start is not None:
            added.earliest_start.CopyFrom(to_timestamp(job.earliest_start))
        if job.deadline is not None:
            added.deadline.CopyFrom(to_timestamp(job.deadline))
    o = request.options
    o.policy = policy_number(options.policy)
    o.time_limit.CopyFrom(to_duration(options.time_limit_s))
    o.migration_cost_gco2 = options.migration_cost_gco2
    o.lateness_gco2_per_slot = options.lateness_gco2_per_slot
    o.preferred_discount = options.preferred_discount
    o.risk_aversion = options.risk_aversion
    o.mip_gap = options.mip_gap
    return request


def solve_result(response: optimizer_pb2.SolveResponse, asked: placement.Options) -> placement.Result:
    """The answer as a domain Result; a policy or solver the answer leaves unspecified is the one asked."""
    placements = []
    for p in response.placements:
        if p.placed:
            placements.append(
                placement.Placement(
                    job_id=p.job_id,
                    placed=True,
                    cluster=p.cluster,
                    start_slot=p.start_slot,
                    start=from_timestamp(p.start) if p.HasField("start") else None,
                    energy_wh=p.energy_wh,
                    gco2=p.gco2,
                    late=p.late,
                )
            )
        else:
            reason = enum_member(
                optimizer_pb2.UnplacedReason, "UNPLACED_REASON_", placement.UnplacedReason, p.unplaced_reason
            )
            placements.append(
                placement.Placement(job_id=p.job_id, placed=False, reason=reason, detail=p.reason)
            )
    status = enum_member(optimizer_pb2.SolveStatus, "SOLVE_STATUS_", placement.Status, response.status)
    policy = enum_member(optimizer_pb2.Policy, "POLICY_", placement.Policy, response.policy)
    solver = enum_member(optimizer_pb2.Solver, "SOLVER_", placement.Solver, response.solver)
    return placement.Result(
        status=status or placement.Status.FEASIBLE,
        placements=tuple(placements),
        emissions_gco2=response.emissions_gco2,
        objective_gco2=response.objective_gco2,
        # Unset means no plan or no bound: NaN in the domain, never 0.
        lower_bound_gco2=response.lower_bound_gco2 if response.HasField("lower_bound_gco2") else math.nan,
        gap=response.gap if response.HasField("gap") else math.nan,
        placed_weight=response.placed_weight,
        placed_weight_bound=response.placed_weight_bound if response.HasField("placed_weight_bound") else None,
        wall_seconds=duration_seconds(response.solve_wall_time),
        agnostic_gco2=response.agnostic_gco2,
        policy=policy or asked.policy,
        solver=solver or asked.solver,
        message=response.message,
    )


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
            raise _unavailable("dispatcher", exc) from None
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
        )
        try:
            response = await self._stub.DispatchJob(request, timeout=self.timeout, metadata=self.metadata)
        except grpc.aio.AioRpcError as exc:
            if reason_of(exc) == DEADLINE_PASSED:
                raise DeadlinePassed(f"dispatcher: {exc.details()}") from None
            raise _unavailable("dispatcher", exc) from None
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
            raise _unavailable("dispatcher", exc) from None
        return response.deleted

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
                    )
                elif kind == "cluster":
                    c = response.cluster
                    yield ClusterStatus(c.cluster, c.ready, c.reason, _time(c.observed_at))
                elif kind == "bookmark":
                    yield SnapshotEnd()
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                return
            raise _unavailable("dispatcher", exc) from None
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
