"""The hub's OptimizerPort, in-process: the optimizer's domain solve called synchronously, no gRPC.

The request is mapped to the optimizer's domain `Problem` and `Options` the way its servicer does, solved by
`services.optimizer` directly, and mapped back to a `SolveResponse`. The wall time of every solve is kept for
the report (these figures are the only wall-clock ones in the evaluation).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from caspian.v1 import common_pb2, optimizer_pb2
from services.common.energy import Power
from services.common.timeconv import duration_seconds, to_duration, to_timestamp
from services.hub.ports import OptimizerPort
from services.optimizer import problem as domain

POLICIES = {
    optimizer_pb2.POLICY_CASPIAN: domain.Policy.CASPIAN,
    optimizer_pb2.POLICY_ROUND_ROBIN: domain.Policy.ROUND_ROBIN,
    optimizer_pb2.POLICY_LEAST_LOADED: domain.Policy.LEAST_LOADED,
    optimizer_pb2.POLICY_GREEDY_CARBON: domain.Policy.GREEDY_CARBON,
    optimizer_pb2.POLICY_TEMPORAL_ONLY: domain.Policy.TEMPORAL_ONLY,
    optimizer_pb2.POLICY_IBM_CASPIAN: domain.Policy.IBM_CASPIAN,
    optimizer_pb2.POLICY_NAIVE_MILP: domain.Policy.NAIVE_MILP,
}
PROTO_POLICY = {v: k for k, v in POLICIES.items()}
STATUSES = {
    domain.Status.OPTIMAL: optimizer_pb2.SOLVE_STATUS_OPTIMAL,
    domain.Status.FEASIBLE: optimizer_pb2.SOLVE_STATUS_FEASIBLE,
    domain.Status.INFEASIBLE: optimizer_pb2.SOLVE_STATUS_INFEASIBLE,
    domain.Status.NO_SOLUTION_IN_TIME: optimizer_pb2.SOLVE_STATUS_NO_SOLUTION_IN_TIME,
}
REASONS = {
    domain.UnplacedReason.DEADLINE: optimizer_pb2.UNPLACED_REASON_DEADLINE,
    domain.UnplacedReason.CAPACITY: optimizer_pb2.UNPLACED_REASON_CAPACITY,
    domain.UnplacedReason.NO_ELIGIBLE_CLUSTER: optimizer_pb2.UNPLACED_REASON_NO_ELIGIBLE_CLUSTER,
    domain.UnplacedReason.BEYOND_HORIZON: optimizer_pb2.UNPLACED_REASON_BEYOND_HORIZON,
    domain.UnplacedReason.SOLVER: optimizer_pb2.UNPLACED_REASON_SOLVER,
}

SolveFn = Callable[[domain.Problem, domain.Options], domain.Result]


def domain_solve() -> SolveFn:
    """The optimizer's entry point: one problem, one policy, one result."""
    from services.optimizer.solve import solve

    return solve


def _time(ts) -> datetime:
    return datetime.fromtimestamp(ts.seconds + ts.nanos / 1e9, UTC)


def _resources(r: common_pb2.Resources) -> domain.Resources:
    return domain.Resources(r.cpu_millis, r.memory_bytes, r.gpus)


def problem_from_request(
    request: optimizer_pb2.SolveRequest, homes: dict[str, str] | None = None
) -> tuple[domain.Problem, domain.Options]:
    """The domain problem of a request; `homes` fills the home cluster of jobs that name none."""
    names = {c.name for c in request.clusters}
    homes = {k: v for k, v in (homes or {}).items() if v in names}
    grid = domain.Grid(
        _time(request.grid.start), timedelta(seconds=duration_seconds(request.grid.slot)), request.grid.slots
    )
    jobs = tuple(
        domain.Job(
            id=j.id,
            resources=_resources(j.resources),
            runtime=timedelta(seconds=duration_seconds(j.runtime)),
            earliest_start=_time(j.earliest_start) if j.HasField("earliest_start") else None,
            deadline=_time(j.deadline) if j.HasField("deadline") else None,
            required_clusters=tuple(j.required_clusters),
            preferred_clusters=tuple(j.preferred_clusters),
            excluded_clusters=tuple(j.excluded_clusters),
            priority=j.priority,
            current_cluster=j.current_cluster,
            home_cluster=j.home_cluster or homes.get(j.id, ""),
        )
        for j in request.jobs
    )
    clusters = tuple(
        domain.Cluster(
            c.name,
            c.zone,
            _resources(c.capacity),
            Power(
                c.power.idle_watts,
                c.power.peak_watts,
                c.power.watts_per_core,
                c.power.watts_per_gpu,
                c.power.watts_per_gib,
                c.power.pue,
            ),
        )
        for c in request.clusters
    )
    forecasts = tuple(domain.Forecast(f.cluster, tuple(f.gco2_per_kwh)) for f in request.forecasts)
    reservations = tuple(
        domain.Reservation(r.cluster, _resources(r.resources), r.start_slot, r.end_slot, r.job_id)
        for r in request.reservations
    )
    o = request.options
    options = domain.Options(
        policy=POLICIES.get(o.policy, domain.Policy.CASPIAN),
        solver=domain.Solver.CBC if o.solver == optimizer_pb2.SOLVER_CBC else domain.Solver.HIGHS,
        time_limit_s=duration_seconds(o.time_limit) if o.HasField("time_limit") else 30.0,
        migration_cost_gco2=o.migration_cost_gco2,
        lateness_gco2_per_slot=o.lateness_gco2_per_slot,
        preferred_discount=o.preferred_discount,
        mip_gap=o.mip_gap or domain.Options.mip_gap,
    )
    return domain.Problem(jobs, clusters, grid, forecasts, reservations), options


def response_from_result(result: domain.Result) -> optimizer_pb2.SolveResponse:
    response = optimizer_pb2.SolveResponse(
        status=STATUSES[result.status],
        emissions_gco2=result.emissions_gco2,
        objective_gco2=result.objective_gco2,
        lower_bound_gco2=result.lower_bound_gco2,
        gap=result.gap,
        solve_wall_time=to_duration(result.wall_seconds),
        agnostic_gco2=result.agnostic_gco2,
        policy=PROTO_POLICY[result.policy],
        solver=optimizer_pb2.SOLVER_CBC if result.solver == domain.Solver.CBC else optimizer_pb2.SOLVER_HIGHS,
        message=result.message,
        placed_count=result.placed_count,
        unplaced_count=result.unplaced_count,
    )
    for p in result.placements:
        placement = response.placements.add(
            job_id=p.job_id,
            placed=p.placed,
            cluster=p.cluster,
            start_slot=p.start_slot,
            energy_wh=p.energy_wh,
            gco2=p.gco2,
            unplaced_reason=REASONS.get(p.reason, 0) if p.reason else 0,
            reason=p.detail,
            late=p.late,
        )
        if p.start is not None:
            placement.start.CopyFrom(to_timestamp(p.start))
    return response


class InProcessOptimizer(OptimizerPort):
    """Solves on the caller's thread: the simulation is single-threaded and its clock does not move.

    `homes` (job id -> cluster) is the home cluster temporal-only keeps a job on. The hub sends none
    (`SolveJob.home_cluster` is never set), and the optimizer's default, the first allowed cluster by name,
    would put every job on one cluster; only temporal-only reads it.
    """

    def __init__(self, solve: SolveFn | None = None, homes: dict[str, str] | None = None):
        self._solve = solve or domain_solve()
        self.homes = homes or {}
        self.wall_seconds: list[float] = []
        self.statuses: list[str] = []

    async def solve(self, request: optimizer_pb2.SolveRequest) -> optimizer_pb2.SolveResponse:
        began = time.perf_counter()
        problem, options = problem_from_request(request, self.homes)
        result = self._solve(problem, options)
        response = response_from_result(result)
        self.wall_seconds.append(time.perf_counter() - began)
        self.statuses.append(result.status.value)
        return response
