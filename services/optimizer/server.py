"""Optimizer gRPC servicer: maps protobuf to the domain and back, nothing more.

Solves run on worker threads (asyncio.to_thread), at most `solve_workers` at once, so the event loop keeps
answering health checks while HiGHS and numpy work.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from caspian.v1 import common_pb2, optimizer_pb2, optimizer_pb2_grpc
from services.common.clock import Clock
from services.common.energy import Power
from services.common.errors import InvalidArgument
from services.common.jobrules import runtime_problem
from services.common.server import GrpcServer
from services.common.timeconv import (
    checked_duration,
    checked_timestamp,
    duration_seconds,
    to_duration,
    to_timestamp,
)
from services.optimizer.problem import (
    AgnosticRun,
    Cluster,
    Forecast,
    Grid,
    Interruptible,
    Job,
    Options,
    Policy,
    Problem,
    Reservation,
    Resources,
    Result,
    Segment,
    Solver,
    Status,
    UnplacedReason,
)
from services.optimizer.settings import OptimizerSettings
from services.optimizer.solve import solve
from services.optimizer.validate import Limits, check_job

SERVICE_NAME = optimizer_pb2.DESCRIPTOR.services_by_name["OptimizerService"].full_name

POLICY_TO_PROTO = {
    Policy.CASPIAN: optimizer_pb2.POLICY_CASPIAN,
    Policy.ROUND_ROBIN: optimizer_pb2.POLICY_ROUND_ROBIN,
    Policy.LEAST_LOADED: optimizer_pb2.POLICY_LEAST_LOADED,
    Policy.GREEDY_CARBON: optimizer_pb2.POLICY_GREEDY_CARBON,
    Policy.TEMPORAL_ONLY: optimizer_pb2.POLICY_TEMPORAL_ONLY,
    Policy.IBM_CASPIAN: optimizer_pb2.POLICY_IBM_CASPIAN,
    Policy.NAIVE_MILP: optimizer_pb2.POLICY_NAIVE_MILP,
    Policy.WAIT_AWHILE: optimizer_pb2.POLICY_WAIT_AWHILE,
}
POLICY_FROM_PROTO = {v: k for k, v in POLICY_TO_PROTO.items()}
SOLVER_TO_PROTO = {Solver.HIGHS: optimizer_pb2.SOLVER_HIGHS, Solver.CBC: optimizer_pb2.SOLVER_CBC}
SOLVER_FROM_PROTO = {v: k for k, v in SOLVER_TO_PROTO.items()}
STATUS_TO_PROTO = {
    Status.OPTIMAL: optimizer_pb2.SOLVE_STATUS_OPTIMAL,
    Status.FEASIBLE: optimizer_pb2.SOLVE_STATUS_FEASIBLE,
    Status.INFEASIBLE: optimizer_pb2.SOLVE_STATUS_INFEASIBLE,
    Status.NO_SOLUTION_IN_TIME: optimizer_pb2.SOLVE_STATUS_NO_SOLUTION_IN_TIME,
}
REASON_TO_PROTO = {
    UnplacedReason.DEADLINE: optimizer_pb2.UNPLACED_REASON_DEADLINE,
    UnplacedReason.CAPACITY: optimizer_pb2.UNPLACED_REASON_CAPACITY,
    UnplacedReason.NO_ELIGIBLE_CLUSTER: optimizer_pb2.UNPLACED_REASON_NO_ELIGIBLE_CLUSTER,
    UnplacedReason.BEYOND_HORIZON: optimizer_pb2.UNPLACED_REASON_BEYOND_HORIZON,
    UnplacedReason.SOLVER: optimizer_pb2.UNPLACED_REASON_SOLVER,
    UnplacedReason.INVALID: optimizer_pb2.UNPLACED_REASON_INVALID,
}

SOLVE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
JOB_BUCKETS = (1, 10, 50, 100, 500, 1000, 2000, 5000, 10000, 20000)


@dataclass
class OptimizerMetrics:
    solve_seconds: Histogram
    gap: Gauge
    solves: Counter
    jobs: Histogram
    refused_jobs: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> OptimizerMetrics:
        return cls(
            solve_seconds=Histogram(
                "caspian_solve_seconds",
                "Wall time of one solve, by policy.",
                ["policy"],
                buckets=SOLVE_BUCKETS,
                registry=registry,
            ),
            gap=Gauge(
                "caspian_optimality_gap",
                "Relative gap of the last solve (0.01 = 1 %), by policy; NaN when it had no plan, so no bound.",
                ["policy"],
                registry=registry,
            ),
            solves=Counter(
                "caspian_solves",
                "Solves answered, by policy and status.",
                ["policy", "status"],
                registry=registry,
            ),
            jobs=Histogram(
                "caspian_solve_jobs", "Jobs per Solve request.", buckets=JOB_BUCKETS, registry=registry
            ),
            refused_jobs=Counter(
                "caspian_solve_refused_jobs",
                "Jobs refused alone by the job rule (UNPLACED_REASON_INVALID), the rest of their Solve answered.",
                registry=registry,
            ),
        )


def _resources(msg: common_pb2.Resources) -> Resources:
    return Resources(cpu_millis=msg.cpu_millis, memory_bytes=msg.memory_bytes, gpus=msg.gpus)


def _power(msg: common_pb2.PowerModel) -> Power:
    return Power(
        idle_watts=msg.idle_watts,
        peak_watts=msg.peak_watts,
        watts_per_core=msg.watts_per_core,
        watts_per_gpu=msg.watts_per_gpu,
        watts_per_gib=msg.watts_per_gib,
        pue=msg.pue,
    )


def _interruptible(msg: common_pb2.Interruptible, path: str) -> Interruptible:
    return Interruptible(
        resume_overhead=checked_duration(msg.resume_overhead, f"{path}.resume_overhead"),
        min_segment=checked_duration(msg.min_segment, f"{path}.min_segment"),
        max_pauses=msg.max_pauses if msg.HasField("max_pauses") else None,
    )


def _segment_to_proto(segment: Segment) -> optimizer_pb2.PlacedSegment:
    return optimizer_pb2.PlacedSegment(
        start_slot=segment.start_slot,
        end_slot=segment.end_slot,
        start=to_timestamp(segment.start),
        end=to_timestamp(segment.end),
        energy_wh=segment.energy_wh,
        gco2=segment.gco2,
    )


def _agnostic_to_proto(run: AgnosticRun | None) -> optimizer_pb2.AgnosticRun | None:
    if run is None:
        return None
    return optimizer_pb2.AgnosticRun(cluster=run.cluster, start_slot=run.start_slot, gco2=run.gco2)


def _job_from_proto(job: optimizer_pb2.SolveJob, path: str, clusters: set[str]) -> Job:
    """One SolveJob as the domain's Job, under the shared job rule; InvalidArgument names the field."""
    problem = runtime_problem(job.runtime.seconds, job.runtime.nanos)
    if problem is not None:
        raise InvalidArgument(problem[1], field=f"{path}.runtime{'.' + problem[0] if problem[0] else ''}")
    domain = Job(
        id=job.id,
        resources=_resources(job.resources),
        runtime=checked_duration(job.runtime, f"{path}.runtime"),
        earliest_start=checked_timestamp(job.earliest_start, f"{path}.earliest_start")
        if job.HasField("earliest_start")
        else None,
        deadline=checked_timestamp(job.deadline, f"{path}.deadline") if job.HasField("deadline") else None,
        required_clusters=tuple(job.required_clusters),
        preferred_clusters=tuple(job.preferred_clusters),
        excluded_clusters=tuple(job.excluded_clusters),
        priority=job.priority,
        current_cluster=job.current_cluster,
        home_cluster=job.home_cluster,
        previous_cluster=job.previous.cluster,
        previous_start=checked_timestamp(job.previous.start, f"{path}.previous.start")
        if job.previous.HasField("start")
        else None,
        interruptible=_interruptible(job.interruptible, f"{path}.interruptible")
        if job.HasField("interruptible")
        else None,
        remaining_runtime=checked_duration(job.remaining_runtime, f"{path}.remaining_runtime")
        if job.HasField("remaining_runtime")
        and (job.remaining_runtime.seconds, job.remaining_runtime.nanos) != (0, 0)
        else None,
        pauses_taken=job.pauses_taken,
        needs_resume=job.needs_resume,
    )
    check_job(domain, clusters, path)
    return domain


def jobs_from_proto(
    request: optimizer_pb2.SolveRequest,
) -> tuple[tuple[Job, ...], list[optimizer_pb2.Placement]]:
    """The jobs to solve, and a refusal for each job that breaks the job rule: one bad job never fails the
    whole Solve. Ids are the request's own key, so an empty or repeated id still refuses the request."""
    clusters = {c.name for c in request.clusters}
    jobs: list[Job] = []
    refused: list[optimizer_pb2.Placement] = []
    ids: set[str] = set()
    for i, job in enumerate(request.jobs):
        if not job.id:
            raise InvalidArgument("must not be empty", field=f"jobs[{i}].id")
        if job.id in ids:
            raise InvalidArgument(f"duplicate job id {job.id[:80]!r}", field=f"jobs[{i}].id")
        ids.add(job.id)
        try:
            jobs.append(_job_from_proto(job, f"jobs[{i}]", clusters))
        except InvalidArgument as exc:
            refused.append(
                optimizer_pb2.Placement(
                    job_id=job.id,
                    placed=False,
                    unplaced_reason=REASON_TO_PROTO[UnplacedReason.INVALID],
                    reason=exc.message,
                )
            )
    return tuple(jobs), refused


def problem_from_proto(request: optimizer_pb2.SolveRequest, jobs: tuple[Job, ...] | None = None) -> Problem:
    """The domain's Problem; without `jobs`, every job must pass the job rule (InvalidArgument otherwise), as
    in-process callers expect."""
    if jobs is None:
        jobs, refused = jobs_from_proto(request)
        if refused:
            raise InvalidArgument(refused[0].reason)
    clusters = tuple(
        Cluster(name=c.name, zone=c.zone, capacity=_resources(c.capacity), power=_power(c.power))
        for c in request.clusters
    )
    grid = Grid(
        start=checked_timestamp(request.grid.start, "grid.start"),
        slot=checked_duration(request.grid.slot, "grid.slot"),
        slots=request.grid.slots,
    )
    forecasts = tuple(
        Forecast(
            cluster=f.cluster, gco2_per_kwh=tuple(f.gco2_per_kwh), relative_spread=tuple(f.relative_spread)
        )
        for f in request.forecasts
    )
    reservations = tuple(
        Reservation(
            cluster=r.cluster,
            resources=_resources(r.resources),
            start_slot=r.start_slot,
            end_slot=r.end_slot,
            job_id=r.job_id,
        )
        for r in request.reservations
    )
    return Problem(jobs=jobs, clusters=clusters, grid=grid, forecasts=forecasts, reservations=reservations)


def options_from_proto(msg: optimizer_pb2.SolveOptions, settings: OptimizerSettings) -> Options:
    if msg.policy != optimizer_pb2.POLICY_UNSPECIFIED and msg.policy not in POLICY_FROM_PROTO:
        raise InvalidArgument(f"unknown policy {msg.policy}", field="options.policy")
    if msg.solver != optimizer_pb2.SOLVER_UNSPECIFIED and msg.solver not in SOLVER_FROM_PROTO:
        raise InvalidArgument(f"unknown solver {msg.solver}", field="options.solver")
    time_limit = duration_seconds(msg.time_limit) if msg.HasField("time_limit") else 0.0
    if time_limit < 0 or not math.isfinite(time_limit):
        raise InvalidArgument("must not be negative", field="options.time_limit")
    if time_limit > settings.max_time_limit_seconds:
        raise InvalidArgument(
            f"at most {settings.max_time_limit_seconds:g} s, got {time_limit:g} s", field="options.time_limit"
        )
    return Options(
        policy=POLICY_FROM_PROTO.get(msg.policy, Policy(settings.default_policy)),
        solver=SOLVER_FROM_PROTO.get(msg.solver, Solver(settings.default_solver)),
        time_limit_s=time_limit or settings.time_limit_seconds,
        migration_cost_gco2=msg.migration_cost_gco2 or settings.migration_cost_gco2,
        lateness_gco2_per_slot=msg.lateness_gco2_per_slot or settings.lateness_gco2_per_slot,
        preferred_discount=msg.preferred_discount or settings.preferred_discount,
        mip_gap=msg.mip_gap or settings.mip_gap,
        risk_aversion=msg.risk_aversion,
    )


def response_from_result(result: Result) -> optimizer_pb2.SolveResponse:
    placements = []
    for p in result.placements:
        if p.placed:
            assert p.start is not None
            placements.append(
                optimizer_pb2.Placement(
                    job_id=p.job_id,
                    placed=True,
                    cluster=p.cluster,
                    start_slot=p.start_slot,
                    start=to_timestamp(p.start),
                    energy_wh=p.energy_wh,
                    gco2=p.gco2,
                    late=p.late,
                    segments=[_segment_to_proto(x) for x in p.segments],
                    agnostic=_agnostic_to_proto(p.agnostic),
                )
            )
        else:
            placements.append(
                optimizer_pb2.Placement(
                    job_id=p.job_id,
                    placed=False,
                    unplaced_reason=REASON_TO_PROTO[p.reason]
                    if p.reason
                    else optimizer_pb2.UNPLACED_REASON_UNSPECIFIED,
                    reason=p.detail,
                    agnostic=_agnostic_to_proto(p.agnostic),
                )
            )
    response = optimizer_pb2.SolveResponse(
        status=STATUS_TO_PROTO[result.status],
        placements=placements,
        emissions_gco2=result.emissions_gco2,
        objective_gco2=result.objective_gco2,
        solve_wall_time=to_duration(result.wall_seconds),
        agnostic_gco2=result.agnostic_gco2,
        policy=POLICY_TO_PROTO[result.policy],
        solver=SOLVER_TO_PROTO[result.solver],
        message=result.message,
        placed_count=result.placed_count,
        unplaced_count=result.unplaced_count,
        placed_weight=result.placed_weight,
    )
    # No plan, no bound: the fields stay unset rather than claiming 0.
    if result.has_bound:
        response.lower_bound_gco2 = result.lower_bound_gco2
        response.gap = result.gap
    if result.placed_weight_bound is not None:
        response.placed_weight_bound = result.placed_weight_bound
    return response


class OptimizerServiceServicer(optimizer_pb2_grpc.OptimizerServiceServicer):
    def __init__(self, settings: OptimizerSettings, metrics: OptimizerMetrics):
        self.settings = settings
        self.metrics = metrics
        self.limits = Limits(
            max_jobs=settings.max_jobs,
            max_slots=settings.max_slots,
            max_clusters=settings.max_clusters,
            max_option_cells=settings.max_option_cells,
        )
        self.workers = asyncio.Semaphore(settings.solve_workers)

    async def Solve(self, request, context):
        if len(request.jobs) > self.limits.max_jobs:
            raise InvalidArgument(
                f"at most {self.limits.max_jobs} jobs per request, got {len(request.jobs)}", "jobs"
            )
        jobs, refused = jobs_from_proto(request)
        problem = problem_from_proto(request, jobs)
        options = options_from_proto(request.options, self.settings)
        self.metrics.jobs.observe(len(request.jobs))
        async with self.workers:
            result = await asyncio.to_thread(solve, problem, options, self.limits)
        policy = result.policy.value
        self.metrics.solve_seconds.labels(policy).observe(result.wall_seconds)
        self.metrics.gap.labels(policy).set(result.gap)
        self.metrics.solves.labels(policy, result.status.value).inc()
        if refused:
            self.metrics.refused_jobs.inc(len(refused))
        response = response_from_result(result)
        if refused:
            response.placements.extend(refused)
            response.unplaced_count += len(refused)
            response.message = "; ".join(
                m for m in (response.message, f"{len(refused)} jobs refused by the job rule") if m
            )
        return response

    async def ListPolicies(self, request, context):
        return optimizer_pb2.ListPoliciesResponse(policies=list(POLICY_TO_PROTO.values()))


async def build_server(
    settings: OptimizerSettings, registry: CollectorRegistry | None = None, clock: Clock | None = None
) -> GrpcServer:
    """`clock` only stamps answers with the service's now (the optimizer keeps no time of its own)."""
    server = GrpcServer("optimizer", settings, registry, clock=clock)
    servicer = OptimizerServiceServicer(settings, OptimizerMetrics.create(server.registry))
    server.add_service(optimizer_pb2_grpc.add_OptimizerServiceServicer_to_server, servicer, SERVICE_NAME)
    return server
