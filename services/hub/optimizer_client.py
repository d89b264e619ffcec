"""The optimizer port over gRPC: the only place in the hub where the optimizer's protobuf meets its domain
types (`services.optimizer.problem`). Enum numbers are mapped by name, pinned by tests to the contract."""

from __future__ import annotations

import enum
import math
from typing import TypeVar, cast

import grpc

from caspian.v1 import (
    common_pb2,
    optimizer_pb2,
    optimizer_pb2_grpc,
)
from services.common.energy import Power
from services.common.timeconv import duration_seconds, from_timestamp, to_duration, to_timestamp
from services.hub.rpcerrors import Metadata, unavailable
from services.optimizer import problem as placement

E = TypeVar("E", bound=enum.Enum)


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
            raise unavailable("optimizer", exc) from None
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
        if job.interruptible is not None:
            _interruptible_pb(added, job)
        if job.previous_cluster and job.previous_start is not None:
            added.previous.cluster = job.previous_cluster
            added.previous.start.CopyFrom(to_timestamp(job.previous_start))
    o = request.options
    o.policy = policy_number(options.policy)
    o.time_limit.CopyFrom(to_duration(options.time_limit_s))
    o.migration_cost_gco2 = options.migration_cost_gco2
    o.lateness_gco2_per_slot = options.lateness_gco2_per_slot
    o.preferred_discount = options.preferred_discount
    o.risk_aversion = options.risk_aversion
    o.mip_gap = options.mip_gap
    return request


def _interruptible_pb(added: optimizer_pb2.SolveJob, job: placement.Job) -> None:
    """An interruptible job's segment terms: its remaining work, pauses taken and whether it resumes."""
    assert job.interruptible is not None
    terms = added.interruptible
    terms.resume_overhead.CopyFrom(to_duration(job.interruptible.resume_overhead))
    terms.min_segment.CopyFrom(to_duration(job.interruptible.min_segment))
    if job.interruptible.max_pauses is not None:
        terms.max_pauses = job.interruptible.max_pauses
    if job.remaining_runtime is not None:
        added.remaining_runtime.CopyFrom(to_duration(job.remaining_runtime))
    added.pauses_taken = job.pauses_taken
    added.needs_resume = job.needs_resume


def _segments(p: optimizer_pb2.Placement) -> tuple[placement.Segment, ...]:
    return tuple(
        placement.Segment(
            start_slot=s.start_slot,
            end_slot=s.end_slot,
            start=from_timestamp(s.start),
            end=from_timestamp(s.end),
            energy_wh=s.energy_wh,
            gco2=s.gco2,
        )
        for s in p.segments
    )


def _agnostic(p: optimizer_pb2.Placement) -> placement.AgnosticRun | None:
    if not p.HasField("agnostic"):
        return None
    return placement.AgnosticRun(p.agnostic.cluster, p.agnostic.start_slot, p.agnostic.gco2)


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
                    segments=_segments(p),
                    agnostic=_agnostic(p),
                )
            )
        else:
            reason = enum_member(
                optimizer_pb2.UnplacedReason, "UNPLACED_REASON_", placement.UnplacedReason, p.unplaced_reason
            )
            placements.append(
                placement.Placement(
                    job_id=p.job_id, placed=False, reason=reason, detail=p.reason, agnostic=_agnostic(p)
                )
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
        placed_weight_bound=response.placed_weight_bound
        if response.HasField("placed_weight_bound")
        else None,
        wall_seconds=duration_seconds(response.solve_wall_time),
        agnostic_gco2=response.agnostic_gco2,
        policy=policy or asked.policy,
        solver=solver or asked.solver,
        message=response.message,
    )
