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

import numpy as np

from services.optimizer.compiled import Compiled, compile_problem
from services.optimizer.plan import Plan, capacity_free_bound, placed_cost
from services.optimizer.policies import greedy_carbon, least_loaded, round_robin, temporal_only
from services.optimizer.problem import (
    Options,
    Placement,
    Policy,
    Problem,
    Result,
    Status,
    UnplacedReason,
    relative_gap,
)
from services.optimizer.solvers import Outcome, OutOfTime
from services.optimizer.validate import Limits, validate_options, validate_problem
from services.optimizer.verify import remove_violations

log = logging.getLogger("caspian.optimizer")

GUARD_SHARE = 0.05
GUARD_PER_JOB_S = 3e-5
GUARD_FIXED_S = 0.05

HEURISTICS = {
    Policy.ROUND_ROBIN: round_robin,
    Policy.LEAST_LOADED: least_loaded,
    Policy.GREEDY_CARBON: greedy_carbon,
    Policy.TEMPORAL_ONLY: temporal_only,
}


def _emissions(cp: Compiled, plan: Plan) -> float:
    return float(
        sum(
            cp.emissions(int(j), int(plan.cluster[j]), int(plan.start[j])) for j in np.nonzero(plan.placed)[0]
        )
    )


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
    agnostic = _emissions(cp, agnostic_plan) if agnostic_plan is not None else math.nan

    soft = options.policy == Policy.IBM_CASPIAN
    plan = Plan.empty(cp.n)
    status = Status.FEASIBLE
    # Bounds the policy proves: on the cost of plans placing at least its plan's weight, on the penalised
    # cost (the naive MILP's solver bound), and on the weight any plan places.
    carbon_bound = -math.inf
    penalised_bound: float | None = None
    weight_bound: int | None = None
    out_of_time = False
    try:
        if options.policy == Policy.CASPIAN:
            from services.optimizer.model import solve_caspian

            outcome = solve_caspian(cp, options.solver.value, options.mip_gap, deadline, deadline - started)
            plan = outcome.plan
            carbon_bound, weight_bound = outcome.carbon_bound, outcome.weight_bound
            status = Status.OPTIMAL if outcome.proven else Status.FEASIBLE
            notes.append(outcome.stats.describe())
        elif options.policy == Policy.LEAST_LOADED and agnostic_plan is not None:
            plan = Plan(agnostic_plan.cluster.copy(), agnostic_plan.start.copy())
        elif options.policy in HEURISTICS:
            plan = HEURISTICS[options.policy](cp, deadline)
        elif options.policy == Policy.IBM_CASPIAN:
            from services.optimizer.policies_ibm import ibm_caspian

            plan, result = ibm_caspian(cp, deadline)
            out_of_time = result == Outcome.NO_SOLUTION
        elif options.policy == Policy.NAIVE_MILP:
            from services.optimizer.policies import naive_milp

            plan, result, solver_bound = naive_milp(cp, options.solver.value, options.mip_gap, deadline)
            penalised_bound = solver_bound
            status = {
                Outcome.OPTIMAL: Status.OPTIMAL,
                Outcome.FEASIBLE: Status.FEASIBLE,
                Outcome.INFEASIBLE: Status.INFEASIBLE,
            }.get(result, Status.NO_SOLUTION_IN_TIME)
            out_of_time = status == Status.NO_SOLUTION_IN_TIME
        else:
            raise AssertionError(f"unhandled policy {options.policy}")
    except OutOfTime:
        out_of_time = True
    if out_of_time:
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
        bound = capacity_free_bound(cp, placed_weight)
        if not removed:
            bound = max(bound, carbon_bound)
        if penalised_bound is not None:
            # cost(x) + P (W - w(x)) >= B for every plan x, so cost(x) >= B - P (W - placed) when w(x) >= placed.
            bound = max(bound, penalised_bound - cp.penalty_unit * (total_weight - placed_weight))
        if bound > objective + 1e-6 * max(1.0, abs(objective)) and not soft:
            log.warning("bound above the plan's objective", extra={"bound": bound, "objective": objective})
        bound = min(bound, objective)
        gap = relative_gap(objective, bound)
        if placed_weight == total_weight:
            weight_bound = total_weight
    placements = tuple(_placement(cp, plan, j, status, failed) for j in range(cp.n))
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


def _placement(cp: Compiled, plan: Plan, j: int, status: Status, failed: dict[int, str]) -> Placement:
    job = cp.problem.jobs[j]
    c = int(plan.cluster[j])
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
        )
    reason, detail = cp.reason[j], cp.detail[j]
    if j in failed:
        reason, detail = UnplacedReason.SOLVER, f"withdrawn: {failed[j]}"
    elif reason is None and status == Status.NO_SOLUTION_IN_TIME:
        reason, detail = UnplacedReason.SOLVER, "the time limit passed before a plan was found"
    elif reason is None:
        reason, detail = UnplacedReason.CAPACITY, "no room in the job's window beside the jobs placed"
    return Placement(job_id=job.id, placed=False, reason=reason, detail=detail)
