"""The optimizer's one entry point: `solve(problem, options) -> Result`, free of gRPC.

The hub and offline evaluations import it in-process; the gRPC servicer calls it off the event loop. The
wall-clock limit covers the whole call: validation, the carbon-agnostic reference, the policy and checks.

Status:
- OPTIMAL: the plan is proven within `mip_gap` of the optimum (for CASPIAN) or the solver proved it
  (naive MILP).
- FEASIBLE: a checked plan without that proof: the time limit stopped the search, or the policy is a
  heuristic (the baselines and IBM's algorithm).
- INFEASIBLE: there are jobs and none of them can be placed (each has its reason).
- NO_SOLUTION_IN_TIME: the time limit passed before the policy had any plan.

Objective and bound (gCO2): the objective sums, over placed jobs, emissions (minus the preference discount),
migration and lateness costs. The model also charges a penalty per job left out that exceeds any carbon
difference, so it places as many (priority-weighted) jobs as it can. The bound is a true lower bound on
the objective of an optimal plan: the model's bound B on objective + penalty gives B - (penalty of this
plan), because no plan pays less penalty than an optimal one; it is clamped at zero.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np

from services.optimizer.compiled import Compiled, compile_problem
from services.optimizer.guard import run_guarded
from services.optimizer.plan import Plan, capacity_free_bound, placed_cost, plan_emissions
from services.optimizer.policies import greedy_carbon, least_loaded, round_robin, temporal_only
from services.optimizer.policy_wait_awhile import wait_awhile
from services.optimizer.problem import (
    AgnosticRun,
    Options,
    Placement,
    Policy,
    Problem,
    Result,
    Segment,
    Status,
    UnplacedReason,
    relative_gap,
)
from services.optimizer.segment_plan import interruptible_jobs, solve_with_segments
from services.optimizer.segments import (
    capacity_free_minimum,
    segment_spec,
    segments_emissions,
    segments_energy_wh,
)
from services.optimizer.solvers import Outcome, OutOfTime
from services.optimizer.validate import Limits, validate_options, validate_problem
from services.optimizer.verify import remove_violations

log = logging.getLogger("caspian.optimizer")

GUARD_SHARE = 0.05
GUARD_PER_JOB_S = 3e-5
GUARD_FIXED_S = 0.05
# Of the reserve, the share of the limit a policy's last step may still take past its deadline.
GUARD_GRACE_SHARE = 0.035

HEURISTICS = {
    Policy.ROUND_ROBIN: round_robin,
    Policy.LEAST_LOADED: least_loaded,
    Policy.GREEDY_CARBON: greedy_carbon,
    Policy.TEMPORAL_ONLY: temporal_only,
}


def _emissions(cp: Compiled, plan: Plan) -> float:
    return plan_emissions(cp, plan)


def _class_best(cp: Compiled, deadline: float) -> np.ndarray | None:
    """Each class's least cost in any plan, capacity ignored: an interruptible class may do better in
    segments than in its cheapest one-piece option. None when no job is interruptible; zeros (costs are
    never negative) when the time runs out before every pattern is priced."""
    if not interruptible_jobs(cp) or cp.classes == 0:
        return None
    best = cp.cost.reshape(cp.classes, -1).min(axis=1)
    for k in range(cp.classes):
        if k % 16 == 0 and time.monotonic() > deadline + GUARD_FIXED_S:
            return np.zeros(cp.classes)
        j = int(cp.class_job[k])
        spec = segment_spec(cp, j)
        # A job that cannot split has its one-piece runs for patterns: its cheapest option is already exact.
        if spec is not None and spec.can_split:
            best[k] = min(best[k], capacity_free_minimum(cp, j, spec, beat=float(best[k])))
    return best


def solve(problem: Problem, options: Options | None = None, limits: Limits | None = None) -> Result:
    started = time.monotonic()
    options = options or Options()
    validate_options(options)
    validate_problem(problem, limits or Limits())
    # The policies stop early enough for the checks and the answer to fit in the limit (a hard wall-clock
    # guard: the whole call ends within the limit plus 2 %, measured by the benchmark).
    reserve = GUARD_SHARE * options.time_limit_s + GUARD_PER_JOB_S * len(problem.jobs) + GUARD_FIXED_S
    deadline = started + max(options.time_limit_s - reserve, 0.5 * options.time_limit_s)
    cp = compile_problem(problem, options)
    placeable = int((cp.job_class >= 0).sum())

    notes: list[str] = []
    agnostic_plan: Plan | None = None
    try:
        agnostic_plan = least_loaded(cp, deadline)
    except OutOfTime:
        notes.append("no time left for the carbon-agnostic reference")
    agnostic_runs = _agnostic_runs(cp, agnostic_plan)
    agnostic = (
        float(sum(r.gco2 for r in agnostic_runs if r is not None)) if agnostic_plan is not None else math.nan
    )

    soft = options.policy == Policy.IBM_CASPIAN
    # The hard guard: the policy may finish its last step a little past its deadline; past this point the
    # answer is its last offered plan (guard.py).
    hard = deadline + GUARD_GRACE_SHARE * options.time_limit_s
    guarded = run_guarded(
        lambda: _run_policy(cp, options, agnostic_plan, deadline, started), hard - time.monotonic()
    )
    if guarded.error is not None:
        raise guarded.error
    if guarded.value is not None:
        run = guarded.value
    else:
        run = PolicyRun(Plan.empty(cp.n), Status.NO_SOLUTION_IN_TIME, out_of_time=True)
        if guarded.incumbent is not None:
            run = PolicyRun(guarded.incumbent, Status.FEASIBLE, guarded.carbon_bound, guarded.weight_bound)
        log.warning("policy overran its deadline", extra={"policy": options.policy.value})
        run.notes.append("the policy overran its deadline: its best plan so far is answered")
    notes += run.notes
    plan, status = run.plan, run.status
    carbon_bound, weight_bound, penalised_bound = run.carbon_bound, run.weight_bound, run.penalised_bound
    segments_used = run.segments_used
    if run.out_of_time:
        plan = Plan.empty(cp.n)
        status = Status.NO_SOLUTION_IN_TIME

    removed = remove_violations(cp, plan, soft_deadlines=soft)
    for violation in removed:
        log.error(
            "placement failed verification",
            extra={"job": problem.jobs[violation.job].id, "why": violation.what},
        )
    if removed:
        notes.append(f"{len(removed)} placements failed verification and were withdrawn")
        if status == Status.OPTIMAL:
            status = Status.FEASIBLE
    failed = {v.job: v.what for v in removed}

    placed = int(plan.placed.sum())
    if cp.n and placed == 0 and status != Status.NO_SOLUTION_IN_TIME:
        status = Status.INFEASIBLE
    elif cp.n == 0 or placeable == 0:
        status = Status.OPTIMAL if cp.n == 0 else Status.INFEASIBLE

    objective = placed_cost(cp, plan)
    placed_weight = int(cp.weight[plan.placed].sum())
    total_weight = int(cp.weight[cp.job_class >= 0].sum())
    if status == Status.NO_SOLUTION_IN_TIME:
        # No plan, no bound: nothing is claimed.
        bound = gap = math.nan
        weight_bound = None
    else:
        if segments_used and math.isfinite(carbon_bound) and not removed:
            # Every placeable job is placed: the segment-aware Lagrangian bound holds on its own.
            bound = carbon_bound
        else:
            bound = capacity_free_bound(cp, placed_weight, _class_best(cp, deadline))
        if not removed:
            bound = max(bound, carbon_bound)
        if penalised_bound is not None:
            # cost(x) + P (W - w(x)) >= B for every plan x, so cost(x) >= B - P (W - placed) when w(x) >= placed.
            bound = max(bound, penalised_bound - cp.penalty_unit * (total_weight - placed_weight))
        if bound > objective + 1e-6 * max(1.0, abs(objective)) and not soft:
            log.warning("bound above the plan's objective", extra={"bound": bound, "objective": objective})
        bound = min(bound, objective)
        gap = relative_gap(objective, bound)
        if segments_used and status == Status.FEASIBLE and gap <= options.mip_gap and not removed:
            status = Status.OPTIMAL
        if placed_weight == total_weight:
            weight_bound = total_weight
    placements = tuple(_placement(cp, plan, j, status, failed, agnostic_runs[j]) for j in range(cp.n))
    return Result(
        status=status,
        placements=placements,
        emissions_gco2=_emissions(cp, plan),
        objective_gco2=objective,
        lower_bound_gco2=bound,
        gap=gap,
        wall_seconds=time.monotonic() - started,
        agnostic_gco2=agnostic,
        policy=options.policy,
        solver=options.solver,
        message="; ".join(n for n in notes if n),
        placed_weight=placed_weight,
        placed_weight_bound=weight_bound,
    )


@dataclass
class PolicyRun:
    """What a policy answered, and the bounds it proves: on the cost of plans placing at least its plan's
    weight, on the penalised cost (the naive MILP's solver bound), and on the weight any plan places."""

    plan: Plan
    status: Status
    carbon_bound: float = -math.inf
    weight_bound: int | None = None
    penalised_bound: float | None = None
    out_of_time: bool = False
    segments_used: bool = False
    notes: list[str] = field(default_factory=list)


def _run_policy(
    cp: Compiled, options: Options, agnostic_plan: Plan | None, deadline: float, started: float
) -> PolicyRun:
    run = PolicyRun(Plan.empty(cp.n), Status.FEASIBLE)
    try:
        if options.policy == Policy.CASPIAN and interruptible_jobs(cp):
            segmented = solve_with_segments(cp, options.mip_gap, deadline, deadline - started)
            run.plan = segmented.plan
            run.carbon_bound, run.weight_bound = segmented.carbon_bound, segmented.weight_bound
            # Proven when the covering bound closes the gap (checked by the caller); not claimed here.
            run.segments_used = True
            run.notes.append(segmented.note)
        elif options.policy == Policy.CASPIAN:
            from services.optimizer.model import solve_caspian

            outcome = solve_caspian(cp, options.solver.value, options.mip_gap, deadline, deadline - started)
            run.plan = outcome.plan
            run.carbon_bound, run.weight_bound = outcome.carbon_bound, outcome.weight_bound
            run.status = Status.OPTIMAL if outcome.proven else Status.FEASIBLE
            run.notes.append(outcome.stats.describe())
        elif options.policy == Policy.LEAST_LOADED and agnostic_plan is not None:
            run.plan = Plan(agnostic_plan.cluster.copy(), agnostic_plan.start.copy())
        elif options.policy == Policy.WAIT_AWHILE:
            run.plan = wait_awhile(cp, deadline)
        elif options.policy in HEURISTICS:
            run.plan = HEURISTICS[options.policy](cp, deadline)
        elif options.policy == Policy.IBM_CASPIAN:
            from services.optimizer.policies_ibm import ibm_caspian

            run.plan, result = ibm_caspian(cp, deadline)
            run.out_of_time = result == Outcome.NO_SOLUTION
        elif options.policy == Policy.NAIVE_MILP:
            from services.optimizer.policies import naive_milp

            run.plan, result, run.penalised_bound = naive_milp(
                cp, options.solver.value, options.mip_gap, deadline
            )
            run.status = {
                Outcome.OPTIMAL: Status.OPTIMAL,
                Outcome.FEASIBLE: Status.FEASIBLE,
                Outcome.INFEASIBLE: Status.INFEASIBLE,
            }.get(result, Status.NO_SOLUTION_IN_TIME)
            run.out_of_time = run.status == Status.NO_SOLUTION_IN_TIME
        else:
            raise AssertionError(f"unhandled policy {options.policy}")
    except OutOfTime:
        run.out_of_time = True
    return run


def _agnostic_runs(cp: Compiled, agnostic_plan: Plan | None) -> list[AgnosticRun | None]:
    """Each job's run in the carbon-agnostic plan (None where it has none)."""
    runs: list[AgnosticRun | None] = [None] * cp.n
    if agnostic_plan is not None:
        for j in np.flatnonzero(agnostic_plan.cluster >= 0).tolist():
            c, s = int(agnostic_plan.cluster[j]), int(agnostic_plan.start[j])
            runs[j] = AgnosticRun(cp.names[c], s, cp.emissions(j, c, s))
    return runs


def _placement(
    cp: Compiled, plan: Plan, j: int, status: Status, failed: dict[int, str], agnostic: AgnosticRun | None
) -> Placement:
    job = cp.problem.jobs[j]
    c = int(plan.cluster[j])
    if c >= 0 and j in plan.segments:
        grid = cp.problem.grid
        runs = plan.segments[j]
        # The work completes within the last run slot, at its share in use: the last segment ends there.
        unused = grid.slot * (1.0 - float(cp.frac[j]))
        segments = tuple(
            Segment(
                start_slot=a,
                end_slot=b,
                start=grid.slot_start(a),
                end=grid.slot_start(b) - (unused if i == len(runs) - 1 else timedelta(0)),
                energy_wh=segments_energy_wh(cp, j, c, [(a, b)], last=i == len(runs) - 1),
                gco2=segments_emissions(cp, j, c, [(a, b)], last=i == len(runs) - 1),
            )
            for i, (a, b) in enumerate(runs)
        )
        return Placement(
            job_id=job.id,
            placed=True,
            cluster=cp.names[c],
            start_slot=segments[0].start_slot,
            start=segments[0].start,
            energy_wh=sum(x.energy_wh for x in segments),
            gco2=sum(x.gco2 for x in segments),
            segments=segments,
            agnostic=agnostic,
        )
    if c >= 0:
        s = int(plan.start[j])
        return Placement(
            job_id=job.id,
            placed=True,
            cluster=cp.names[c],
            start_slot=s,
            start=cp.problem.grid.slot_start(s),
            energy_wh=cp.energy_wh(j, c),
            gco2=cp.emissions(j, c, s),
            late=bool(s > cp.deadline_latest[j]),
            agnostic=agnostic,
        )
    reason, detail = cp.reason[j], cp.detail[j]
    if j in failed:
        reason, detail = UnplacedReason.SOLVER, f"withdrawn: {failed[j]}"
    elif reason is None and status == Status.NO_SOLUTION_IN_TIME:
        reason, detail = UnplacedReason.SOLVER, "the time limit passed before a plan was found"
    elif reason is None:
        reason, detail = UnplacedReason.CAPACITY, "no room in the job's window beside the jobs placed"
    return Placement(job_id=job.id, placed=False, reason=reason, detail=detail, agnostic=agnostic)
