"""CASPIAN's spatio-temporal MILP, solved fast with a bound that is true.

Model (see compiled.py for the option costs). For each class k of n_k identical jobs and each allowed option
o = (cluster c, start slot s) in the job's window, an integer y[k,o] counts the jobs of k started at o, and
u[k] counts the jobs left out:

    minimise   sum cost[k,o] y[k,o] + sum P w_k u[k]
    subject to sum_o y[k,o] + u[k] = n_k                                   (every job decided once)
               sum_{k,o covering slot t on c} req[k,r] y[k,o] <= free[c,t,r]   (capacity, per resource)

P exceeds any difference in plan cost, so the plan first places as many (priority-weighted) jobs as
possible, then minimises carbon. Speed-ups, none of which changes the optimum:

1. Identical jobs are one class with an integer count.
2. Options that cannot fit beside the reservations, capacity rows no set of options can overfill, and rows
   implied by another resource's row on the same cell are dropped.
3. The bound is a Lagrangian bound computed here, not taken from any solver: for any multipliers lam >= 0
   on the capacity rows,
       L(lam) = sum_k n_k min(P w_k, min_o (cost[k,o] + lam . A[k,o])) - lam . free
   is below the optimum of the MILP (weak duality). It is evaluated over every option of every class.
4. lam comes from the LP relaxation, solved by column generation on HiGHS (options with a negative reduced
   cost are added until none is left; then L(lam) is the LP optimum). Above SAMPLE_ABOVE_CLASSES classes,
   lam first comes from the LP of a random sample of the classes given the same share of capacity: with
   many jobs the prices of a proportional sample are close to those of the whole.
5. The LP solution is rounded down, the rest placed greedily by Lagrangian price, left-out jobs get room
   by moving a blocking job, and single jobs move to cheaper options with room.
6. Up to MAX_MIP_JOBS jobs, if the gap is still above the target, a MILP (PuLP; HiGHS or CBC) is solved over
   the options whose Lagrangian reduced cost is below the gap: any better plan uses only those
   (reduced-cost fixing), so the solver's bound on it is a bound on the whole problem as well.

The solve stops once the plan is within the requested gap of the bound, or at the deadline.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from services.optimizer.columns import cheapest_options, cheapest_per_cluster, improving_options
from services.optimizer.compiled import RESOURCES, Compiled
from services.optimizer.master_lp import MasterLP
from services.optimizer.plan import ClassFiller, Ledger, Plan, left_out_penalty, penalised_cost
from services.optimizer.pricing import LagrangianPrices
from services.optimizer.repair import fill_greedily, improve_moves, place_left_out
from services.optimizer.restricted_mip import solve_restricted_mip
from services.optimizer.rounding import try_round
from services.optimizer.sampling import sample_prices
from services.optimizer.solvers import Outcome, OutOfTime, check_time, remaining

log = logging.getLogger("caspian.optimizer.model")

INITIAL_OPTIONS_PER_CLASS = 3
COLUMNS_PER_CLASS_PER_ROUND = 3
MAX_ROUNDS = 200
# Above this many jobs the restricted MILP rarely pays for its model-building time.
MAX_MIP_JOBS = 1_000
# Above this many classes, capacity prices come first from the LP of a sample of the classes.
SAMPLE_ABOVE_CLASSES = 600
# With sample prices to rank them, each class's few best options are enough for the first master.
SAMPLED_INITIAL_OPTIONS = 4
# Each class's cheapest option on every cluster joins the first master while the count stays modest.
PER_CLUSTER_COLUMNS_UP_TO = 15_000


@dataclass
class CaspianStats:
    """What each phase of one solve did, for the answer's message and the benchmark."""

    classes: int
    jobs: int
    greedy_objective: float | None = None
    sample_classes: int | None = None
    sample_rounds: int | None = None
    sample_seconds: float | None = None
    capacity_rows: int | None = None
    rounds: int = 0
    lp_converged: bool = False
    columns: int = 0
    lp_seconds: float | None = None
    rounded_objective: float | None = None
    round_seconds: float | None = None
    mip: str | None = None
    mip_exact: bool | None = None
    mip_seconds: float | None = None
    history: list[tuple] = field(default_factory=list)

    def describe(self) -> str:
        parts = [f"classes={self.classes}"]
        if self.capacity_rows is not None:
            parts += [f"rounds={self.rounds}", f"columns={self.columns}", f"lp_converged={self.lp_converged}"]
        if self.mip is not None:
            parts.append(f"mip={self.mip}")
        return "caspian " + " ".join(parts)


@dataclass
class ModelOutcome:
    plan: Plan
    objective: float  # the penalised cost: incl. penalties of placeable jobs left out
    bound: float  # true lower bound on the same objective
    proven: bool  # gap within the target
    timed_out: bool
    stats: CaspianStats
    # A true lower bound on the cost of every plan placing at least this plan's weight.
    carbon_bound: float = -float("inf")
    # A proven upper bound on the weight any plan places, if the solve proved one.
    weight_bound: int | None = None


def solve_caspian(
    cp: Compiled, solver: str, mip_gap: float, deadline: float, budget_s: float
) -> ModelOutcome:
    """Column generation for the bound and the guide, rounding and local moves for the plan, then a
    restricted MILP if the gap is still above `mip_gap` and the problem is small. `budget_s` is the
    whole solve's time limit; every phase stops at its share of it."""
    started = time.monotonic()
    stats = CaspianStats(classes=cp.classes, jobs=cp.n)
    if cp.classes == 0:
        return ModelOutcome(Plan.empty(cp.n), 0.0, 0.0, True, False, stats, 0.0, 0)
    check_time(deadline)
    sample_deadline = min(deadline, started + 0.4 * budget_s)
    lp_deadline = min(deadline, started + 0.75 * budget_s)

    # A plan first, so that any later phase may run out of time.
    incumbent = Plan.empty(cp.n)
    fill_greedily(cp, Ledger(cp.free), ClassFiller(cp, incumbent), cp.cost, deadline)
    upper = penalised_cost(cp, incumbent)
    stats.greedy_objective = upper

    prices = LagrangianPrices(cp)
    zero = np.zeros((cp.clusters, cp.slots, RESOURCES))
    lower, best = prices.bound(zero, cp.cost)
    best_price = guide = cp.cost
    if cp.classes > SAMPLE_ABOVE_CLASSES:
        lam, stats.sample_classes, stats.sample_rounds = sample_prices(cp, sample_deadline)
        if lam is not None:
            guide = prices.price(lam)
            bound, class_best = prices.bound(lam, guide)
            if bound > lower:
                lower, best, best_price = bound, class_best, guide
    stats.sample_seconds = round(time.monotonic() - started, 3)

    if guide is not cp.cost:
        priced = Plan.empty(cp.n)
        try:
            fill_greedily(cp, Ledger(cp.free), ClassFiller(cp, priced), guide, deadline)
            value = penalised_cost(cp, priced)
            if value < upper:
                incumbent, upper = priced, value
        except OutOfTime:
            pass

    lp = MasterLP(cp, prices)
    stats.capacity_rows = lp.cap_rows
    placed = incumbent.cluster >= 0
    lp.add(cp.job_class[placed], incumbent.cluster[placed], incumbent.start[placed])
    sampled = guide is not cp.cost
    lp.add(*cheapest_options(guide, SAMPLED_INITIAL_OPTIONS if sampled else INITIAL_OPTIONS_PER_CLASS))
    if not sampled and cp.classes * cp.clusters <= PER_CLUSTER_COLUMNS_UP_TO:
        lp.add(*cheapest_per_cluster(guide))

    def target() -> float:
        return mip_gap * max(upper - left_out_penalty(cp, incumbent), 1e-9)

    rounds = solved = 0
    converged = False
    rounded = False
    history: list[tuple] = []
    while rounds < MAX_ROUNDS and remaining(lp_deadline) > 0 and upper - lower > target():
        rounds += 1
        if lp.solve(lp_deadline) != Outcome.OPTIMAL:
            break
        solved += 1
        sigma, lam = lp.duals()
        price = prices.price(lam)
        bound, class_best = prices.bound(lam, price)
        if bound > lower:
            lower, best, best_price = bound, class_best, price
        converged = lp.add(*improving_options(price, sigma, lp.in_lp, COLUMNS_PER_CLASS_PER_ROUND)) == 0
        close = lp.objective - lower <= mip_gap * max(lp.objective, 1e-9)
        if converged or close or rounds == 1 or remaining(lp_deadline) <= 0:
            plan = try_round(cp, lp, best_price, deadline) or incumbent
            place_left_out(cp, plan, best_price, deadline)
            improve_moves(cp, plan, deadline)
            rounded = True
            value = penalised_cost(cp, plan)
            if value < upper:
                incumbent, upper = plan, value
        history.append((rounds, round(time.monotonic() - started, 2), round(bound, 2), round(upper, 2)))
        if converged:
            break
    stats.history = history
    stats.rounds, stats.lp_converged, stats.columns = rounds, converged, len(lp.option_columns())
    stats.lp_seconds = round(time.monotonic() - started, 3)
    if not rounded and remaining(deadline) > 0:
        plan = (try_round(cp, lp, best_price, deadline) if solved else None) or incumbent
        place_left_out(cp, plan, best_price, deadline)
        improve_moves(cp, plan, deadline)
        value = penalised_cost(cp, plan)
        if value <= upper:
            incumbent, upper = plan, value
    stats.rounded_objective = upper
    stats.round_seconds = round(time.monotonic() - started, 3)

    if upper - lower > target() + 1e-9 and remaining(deadline) > 0.05 and cp.n <= MAX_MIP_JOBS:
        mip = solve_restricted_mip(
            cp, lp, best_price, best, incumbent, upper, lower, solver, deadline, target()
        )
        stats.mip, stats.mip_exact = mip.outcome, mip.exact
        if mip.plan is not None:
            value = penalised_cost(cp, mip.plan)
            if mip.exact and mip.bound is not None:
                lower = max(lower, min(upper, mip.bound))
            if value < upper:
                incumbent, upper = mip.plan, value
        stats.mip_seconds = round(time.monotonic() - started, 3)
    if lower > upper + 1e-6 * max(1.0, abs(upper)):
        log.warning("bound above the plan's objective", extra={"bound": lower, "objective": upper})
    lower = min(lower, upper)
    proven = upper - lower <= target() + 1e-9
    timed_out = not proven and remaining(deadline) <= 0.05
    carbon_bound = lower - left_out_penalty(cp, incumbent)
    return ModelOutcome(incumbent, upper, lower, proven, timed_out, stats, carbon_bound)
