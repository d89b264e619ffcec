"""The offline oracle: one MILP over the whole run with perfect knowledge of arrivals and intensities.

Every job of the instance, with its arrival as earliest start and its deadline, goes into one problem on the
hub's grid (15-minute slots aligned like the hub's, from the week start to the latest deadline), with the
true intensities as forecasts and the clusters' full capacity. It is solved by the optimizer's CASPIAN
policy with no lateness or migration terms, so its objective is carbon alone. It knows the future, so its
emissions are a lower bound for any online policy that meets every deadline on that grid. When the solve
stops short of proving optimality, its true lower bound (the optimizer's Lagrangian/LP bound) is kept and
reported beside it.

Off-grid jobs (`Instance.off_grid`: too little slack to wait for a slot boundary) have one start, their
arrival, as in the hub, which starts them at once. The oracle still chooses their cluster, and they hold
capacity as the hub's reservation for them does: in every slot their run touches. In the MILP each is a job
that fills exactly those slots, so its cost there is that of the whole covering slots (at least its true
cost); its reported emissions are the true ones over [arrival, arrival + runtime), and the lower bound is
lowered by the most that covering can have added on any cluster, so it stays a bound.

Interruptible jobs (settings ".../int50", ".../int100") go in with their rule (interruptible.py): the
optimizer's CASPIAN model places them in segments on one cluster, priced by its exact dynamic programme over
slot patterns (services/optimizer/segments.py), so the oracle is the segment oracle and its bound a true
bound on the hub's grid. Its slot rules are the hub's: segments start and end on slot boundaries, the resume
overhead is charged as whole slots (5 minutes costs one 15-minute slot), and the useful work's last slot is
charged pro rata. A run that pays only the real 5 minutes at a resume can therefore come in under the
segment oracle by at most 10 minutes of the job's power per pause; segments_oracle.py is an independent
time-indexed MILP of the same model, checked against brute force.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.carbon.replay import forecast_grid
from services.optimizer import problem as domain

from .carbon import job_grams, true_trace
from .interruptible import interruptible_rule
from .optimizer import SolveFn, domain_solve
from .workload import Instance, JobSpec

ORACLE_TIME_LIMIT_S = 600.0
ORACLE_MIP_GAP = 1e-4


@dataclass(frozen=True)
class OracleJob:
    id: str
    placed: bool
    cluster: str = ""
    start: float | None = None
    end: float | None = None
    reason: str = ""
    # Run segments [start, end) of an interruptible job placed in several; empty for one piece.
    segments: tuple[tuple[float, float], ...] = ()


@dataclass
class OracleResult:
    status: str
    exact: bool
    objective_g: float
    bound_g: float
    gap: float
    wall_seconds: float
    jobs: dict[str, OracleJob]
    message: str = ""

    @property
    def feasible_ids(self) -> set[str]:
        return {j.id for j in self.jobs.values() if j.placed}


def oracle_problem(instance: Instance) -> domain.Problem:
    slot = instance.slot_seconds
    start = instance.start
    slots = math.ceil((instance.end - start.timestamp()) / slot) + 1
    grid = domain.Grid(start, timedelta(seconds=slot), slots)
    clusters = tuple(
        domain.Cluster(c.name, c.zone, domain.Resources(c.cpu_millis, c.memory_bytes, 0), c.power)
        for c in instance.clusters
    )
    forecasts = []
    for c in instance.clusters:
        points = forecast_grid(true_trace(c.zone, instance.seed), start, timedelta(seconds=slot), slots)
        forecasts.append(domain.Forecast(c.name, tuple(p.value for p in points)))
    jobs = []
    for j in instance.jobs:
        earliest, runtime, deadline = j.arrival, j.runtime, j.deadline
        if instance.off_grid(j):
            earliest, deadline = covering_slots(instance, j)
            runtime = deadline - earliest
        segmented = j.interruptible and not instance.off_grid(j)
        jobs.append(
            domain.Job(
                id=j.id,
                resources=domain.Resources(j.cpu_millis, j.memory_bytes, 0),
                runtime=timedelta(seconds=runtime),
                earliest_start=datetime.fromtimestamp(earliest, UTC),
                deadline=datetime.fromtimestamp(deadline, UTC),
                interruptible=interruptible_rule() if segmented else None,
            )
        )
    return domain.Problem(tuple(jobs), clusters, grid, tuple(forecasts))


def covering_slots(instance: Instance, job: JobSpec) -> tuple[float, float]:
    """[first slot's start, last slot's end) of the slots an off-grid job's run from its arrival touches."""
    slot, t0 = instance.slot_seconds, instance.start.timestamp()
    first = math.floor((job.arrival - t0) / slot + 1e-9)
    end = math.ceil((job.arrival + job.runtime - t0) / slot - 1e-9)
    return t0 + first * slot, t0 + end * slot


def covering_excess_g(instance: Instance) -> float:
    """The most that modelling off-grid jobs by their covering slots can add to the oracle's objective: per
    job, the largest (covering - true) gCO2 over the clusters."""
    total = 0.0
    for job in instance.jobs:
        if not instance.off_grid(job):
            continue
        first, end = covering_slots(instance, job)
        excess = 0.0
        for c in instance.clusters:
            trace = true_trace(c.zone, instance.seed)
            covering = job_grams(job, c, trace, first, end)
            excess = max(excess, covering - job_grams(job, c, trace, job.arrival, job.arrival + job.runtime))
        total += excess
    return total


def solve_oracle(
    instance: Instance,
    *,
    solve: SolveFn | None = None,
    time_limit_s: float = ORACLE_TIME_LIMIT_S,
    mip_gap: float = ORACLE_MIP_GAP,
) -> OracleResult:
    problem = oracle_problem(instance)
    if solve is None:
        from services.optimizer.validate import Limits

        # One problem over the whole run: more slots than a service request may carry.
        limits = Limits(
            max_jobs=max(Limits.max_jobs, len(problem.jobs)),
            max_slots=max(Limits.max_slots, problem.grid.slots),
        )
        entry = domain_solve()

        def solve(p, o):
            return entry(p, o, limits)

    options = domain.Options(
        policy=domain.Policy.CASPIAN,
        time_limit_s=time_limit_s,
        migration_cost_gco2=0.0,
        lateness_gco2_per_slot=0.0,
        preferred_discount=0.0,
        mip_gap=mip_gap,
    )
    began = time.perf_counter()
    result = solve(problem, options)
    wall = time.perf_counter() - began
    slot = instance.slot_seconds
    t0 = instance.start.timestamp()
    specs = {j.id: j for j in instance.jobs}
    jobs = {}
    for p in result.placements:
        if not p.placed:
            detail = p.detail or (p.reason.value if p.reason else "")
            jobs[p.job_id] = OracleJob(p.job_id, False, reason=detail)
            continue
        spec = specs[p.job_id]
        if len(p.segments) > 1:
            # The optimizer ends the last segment where the useful work's last, partly used slot ends.
            spans = tuple((s.start.timestamp(), s.end.timestamp()) for s in p.segments)
            jobs[p.job_id] = OracleJob(p.job_id, True, p.cluster, spans[0][0], spans[-1][1], segments=spans)
            continue
        start = spec.arrival if instance.off_grid(spec) else t0 + p.start_slot * slot
        jobs[p.job_id] = OracleJob(p.job_id, True, p.cluster, start, start + spec.runtime)
    exact = result.status == domain.Status.OPTIMAL and result.gap <= mip_gap + 1e-12
    return OracleResult(
        status=result.status.value,
        exact=exact,
        objective_g=result.objective_gco2,
        bound_g=max(0.0, result.lower_bound_gco2 - covering_excess_g(instance)),
        gap=result.gap,
        wall_seconds=wall,
        jobs=dict(sorted(jobs.items())),
        message=result.message,
    )


def oracle_grams(instance: Instance, oracle: OracleResult, only: set[str] | None = None) -> float:
    """The oracle plan's emissions on the true trace (of the jobs in `only`, if given)."""
    clusters = {c.name: c for c in instance.clusters}
    specs = {j.id: j for j in instance.jobs}
    total = 0.0
    for job in oracle.jobs.values():
        if job.placed and (only is None or job.id in only):
            cluster = clusters[job.cluster]
            trace = true_trace(cluster.zone, instance.seed)
            spans = job.segments or ((job.start, job.end),)
            total += sum(job_grams(specs[job.id], cluster, trace, a, b) for a, b in spans)
    return total
