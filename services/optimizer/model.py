"""CASPIAN's spatio-temporal MILP with a lexicographic objective, solved fast with bounds that are true.

Model (see compiled.py for the option costs). For each class k of n_k identical jobs and each allowed option
o = (cluster c, start slot s) in the job's window, an integer y[k,o] counts the jobs of k started at o, and
u[k] counts the jobs left out:

    sum_o y[k,o] + u[k] = n_k                                          (every job decided once)
    sum_{k,o covering slot t on c} req[k,r] y[k,o] <= free[c,t,r]      (capacity, per resource)

Level 1 (placement.py): maximise the priority weight placed, W* = max sum_k w_k (n_k - u[k]). Level 2: among
plans placing at least the weight W of the level-1 plan, minimise sum cost[k,o] y[k,o] (carbon). Each level
has its own proven bound: an upper bound on W*, so "680 placed is the maximum" is a proof, and a lower bound
on the cost of every plan placing at least W, which is never above the lexicographic optimum's cost. When every
placeable job is placed, level 1 is proven by the plan itself and costs nothing.

Speed-ups, none of which changes the optimum:
1. Identical jobs (same shape, window, eligibility, preference, current cluster, priority) are one class with
   an integer count, in the LP, the pricing and the MILP.
2. Options that cannot fit beside the reservations, capacity rows no set of options can overfill, and rows
   implied by another resource's row on the same cell are dropped.
3. The bounds are Lagrangian bounds computed here (pricing.py), valid for any multipliers, evaluated over
   every option of every class, never taken on trust from a solver stopped by a limit.
4. The multipliers come from LP relaxations solved by column generation on HiGHS (master_lp.py). Above
   SAMPLE_ABOVE_CLASSES classes they first come from the LP of a random sample of the classes (sampling.py).
5. The LP solution is rounded (rounding.py), the rest placed greedily by Lagrangian price, left-out jobs get
   room by moving a blocking job, and single jobs move to cheaper options with room (repair.py).
6. While the gap is above the target, the restricted MILP over the options whose reduced cost is below the
   gap (restricted_mip.py) gets the time left, whatever the size: any better plan uses only those options.
   With few jobs per class it gets a share of it, and ruin and recreate (ruin_recreate.py) the rest.

A previous plan (Job.previous_cluster/previous_start) is a warm start: it competes with the greedy plan as the
first incumbent and its options join the first master LP. The solve stops once the plan is within the
requested gap of the bound at both levels, or at the deadline.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from services.optimizer.columns import cheapest_options, cheapest_per_cluster, improving_options
from services.optimizer.compiled import Compiled
from services.optimizer.guard import offer, offer_bounds
from services.optimizer.master_lp import MasterLP
from services.optimizer.placement import maximise_placement
from services.optimizer.plan import (
    ClassFiller,
    Ledger,
    Plan,
    class_cost,
    lexicographically_better,
    placed_weight,
)
from services.optimizer.pricing import LagrangianPrices
from services.optimizer.repair import fill_greedily, improve_moves, place_left_out
from services.optimizer.restricted_mip import solve_restricted_milp, solve_restricted_mip_pulp
from services.optimizer.rounding import try_round
from services.optimizer.ruin_recreate import ruin_and_recreate_carbon
from services.optimizer.sampling import sample_prices
from services.optimizer.solvers import Outcome, OutOfTime, check_time, remaining

log = logging.getLogger("caspian.optimizer.model")

INITIAL_OPTIONS_PER_CLASS = 3
COLUMNS_PER_CLASS_PER_ROUND = 3
MAX_ROUNDS = 200
# Shares of the time limit: the placement level's LP, the sample's LP, the carbon level's LP. The placement LP's
# share is a cap (small masters converge long before it); large ones need it for their bound (D96-1000, H288-25).
PLACEMENT_LP_SHARE = 0.4
PLACEMENT_SHARE = 0.6
SAMPLE_SHARE_OF_BUDGET = 0.4
LP_SHARE = 0.5
# The restricted MILP stops this much before the policy's deadline (at most this share of the limit).
MIP_STOP_MARGIN_S = 0.25
MIP_STOP_MARGIN_SHARE = 0.03
# Above this many classes, capacity prices come first from the LP of a sample of the classes.
SAMPLE_ABOVE_CLASSES = 600
# With sample prices to rank them, each class's few best options are enough for the first master.
SAMPLED_INITIAL_OPTIONS = 4
# Each class's cheapest option on every cluster joins the first master while the count stays modest.
PER_CLUSTER_COLUMNS_UP_TO = 15_000
# Share of the time left after rounding that the carbon level's ruin and recreate gets, after the restricted
# MILP has had the rest; it runs only with few jobs per class (as at the placement level, large classes of identical
# jobs are the MILP's strength: D96-burst-0 at 30 s, 12,193 g with the MILP's time, 13,480 g without it).
CARBON_RUIN_SHARE = 0.8
CARBON_RUIN_UP_TO_JOBS_PER_CLASS = 4.0


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
    warm_start: int = 0  # placements of the previous plan that still hold
    placement_rounds: int = 0
    placement_mip: str | None = None
    placement_seconds: float | None = None
    carbon_ruin_kept: int | None = None
    carbon_ruin_seconds: float | None = None
    history: list[tuple] = field(default_factory=list)

    def describe(self) -> str:
        parts = [f"classes={self.classes}"]
        if self.capacity_rows is not None:
            parts += [f"rounds={self.rounds}", f"columns={self.columns}", f"lp_converged={self.lp_converged}"]
        if self.mip is not None:
            parts.append(f"mip={self.mip}")
        if self.placement_seconds is not None:
            parts.append(f"placement_rounds={self.placement_rounds}")
        if self.carbon_ruin_kept is not None:
            parts.append(f"carbon_ruin_kept={self.carbon_ruin_kept}")
        if self.warm_start:
            parts.append(f"warm_start={self.warm_start}")
        return "caspian " + " ".join(parts)


@dataclass
class ModelOutcome:
    plan: Plan
    objective: float  # the carbon level: option costs of the placed jobs
    carbon_bound: float  # a true lower bound on the cost of every plan placing at least this plan's weight
    weight_bound: int | None  # a proven upper bound on the weight any plan places
    proven: bool  # most weight placed (proven) and the cost within the target gap of its bound
    timed_out: bool
    stats: CaspianStats
    # The capacity multipliers of the best Lagrangian bound found ([C, T, R]); None when no LP gave one.
    multipliers: np.ndarray | None = None


def previous_plan(cp: Compiled) -> tuple[Plan | None, int]:
    """The previous plan's placements that are still options and still fit, the rest filled greedily; and
    how many of them held."""
    has = np.nonzero((cp.previous_cluster >= 0) & (cp.job_class >= 0))[0]
    if len(has) == 0:
        return None, 0
    plan = Plan.empty(cp.n)
    ledger = Ledger(cp.free)
    for j in has:
        k, c, s, d = (
            int(cp.job_class[j]),
            int(cp.previous_cluster[j]),
            int(cp.previous_start[j]),
            int(cp.duration[j]),
        )
        if np.isfinite(cp.cost[k, c, s]) and ledger.copies(c, s, d, cp.req[j]) >= 1:
            ledger.take(c, s, d, cp.req[j])
            plan.place(int(j), c, s)
    kept = int(plan.placed.sum())
    if kept == 0:
        return None, 0
    fill_greedily(cp, ledger, ClassFiller(cp, plan), cp.cost)
    return plan, kept


def solve_caspian(
    cp: Compiled, solver: str, mip_gap: float, deadline: float, budget_s: float
) -> ModelOutcome:
    """Placement level, then carbon level: column generation for the bounds and the guide, rounding and
    local moves for the plan, then the restricted MILP with the time left while a gap is above `mip_gap`.
    `budget_s` is the whole solve's time limit; every phase stops at its share of it."""
    started = time.monotonic()
    stats = CaspianStats(classes=cp.classes, jobs=cp.n)
    if cp.classes == 0:
        return ModelOutcome(Plan.empty(cp.n), 0.0, 0.0, 0, True, False, stats)
    check_time(deadline)
    total_weight = int((cp.weight[cp.class_job] * cp.count).sum())

    # A plan first, so that any later phase may run out of time.
    incumbent = Plan.empty(cp.n)
    fill_greedily(cp, Ledger(cp.free), ClassFiller(cp, incumbent), cp.cost, deadline)
    warm, stats.warm_start = previous_plan(cp)
    if warm is not None and lexicographically_better(cp, warm, incumbent):
        incumbent = warm
    offer(incumbent)
    stats.greedy_objective = class_cost(cp, incumbent)

    # Level 1: the most weight any plan places.
    weight_bound: int | None = total_weight
    if placed_weight(cp, incumbent) < total_weight:
        level = maximise_placement(
            cp,
            incumbent,
            min(deadline, started + PLACEMENT_LP_SHARE * budget_s),
            min(deadline, started + PLACEMENT_SHARE * budget_s),
        )
        incumbent, weight_bound = level.plan, level.weight_bound
        offer(incumbent)
        offer_bounds(weight=weight_bound)
        stats.placement_rounds, stats.placement_mip = level.rounds, level.mip
        stats.placement_seconds = round(time.monotonic() - started, 3)
    floor = placed_weight(cp, incumbent)

    # Level 2: the least cost among plans placing at least `floor`.
    upper = class_cost(cp, incumbent)
    phase_start = time.monotonic()
    phase_budget = max(0.0, deadline - phase_start)
    sample_deadline = min(deadline, phase_start + SAMPLE_SHARE_OF_BUDGET * phase_budget)
    lp_deadline = min(deadline, phase_start + LP_SHARE * phase_budget)
    prices = LagrangianPrices(cp)
    lower, best = prices.bound(prices.zero(), cp.cost, floor)
    offer_bounds(carbon=lower)
    multipliers: np.ndarray | None = None
    best_price = guide = cp.cost
    if cp.classes > SAMPLE_ABOVE_CLASSES:
        lam, stats.sample_classes, stats.sample_rounds = sample_prices(cp, sample_deadline)
        if lam is not None:
            guide = prices.price(lam)
            bound, class_best = prices.bound(lam, guide, floor)
            if bound > lower:
                lower, best, best_price = bound, class_best, guide
                multipliers = lam
                offer_bounds(carbon=lower)
    stats.sample_seconds = round(time.monotonic() - started, 3)

    def consider(plan: Plan) -> None:
        nonlocal incumbent, upper
        if lexicographically_better(cp, plan, incumbent):
            incumbent, upper = plan, class_cost(cp, plan)
            offer(incumbent)

    if stats.placement_seconds is not None:
        # Carbon moves that keep every placement: the placement level's plan was built for weight.
        moved = Plan(incumbent.cluster.copy(), incumbent.start.copy())
        improve_moves(cp, moved, deadline)
        consider(moved)

    if guide is not cp.cost:
        priced = Plan.empty(cp.n)
        try:
            fill_greedily(cp, Ledger(cp.free), ClassFiller(cp, priced), guide, deadline)
            consider(priced)
        except OutOfTime:
            pass

    lp = MasterLP(cp, prices, np.zeros(cp.classes), floor)
    stats.capacity_rows = lp.cap_rows
    placed = incumbent.cluster >= 0
    lp.add(cp.job_class[placed], incumbent.cluster[placed], incumbent.start[placed])
    if warm is not None:
        on = warm.cluster >= 0
        lp.add(cp.job_class[on], warm.cluster[on], warm.start[on])
    sampled = guide is not cp.cost
    lp.add(*cheapest_options(guide, SAMPLED_INITIAL_OPTIONS if sampled else INITIAL_OPTIONS_PER_CLASS))
    if not sampled and cp.classes * cp.clusters <= PER_CLUSTER_COLUMNS_UP_TO:
        lp.add(*cheapest_per_cluster(guide))

    def target() -> float:
        return mip_gap * max(upper, 1e-9)

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
        bound, class_best = prices.bound(lam, price, floor)
        if bound > lower:
            lower, best, best_price = bound, class_best, price
            multipliers = lam
            offer_bounds(carbon=lower)
        converged = lp.add(*improving_options(price, sigma, lp.in_lp, COLUMNS_PER_CLASS_PER_ROUND)) == 0
        close = lp.objective - lower <= mip_gap * max(lp.objective, 1e-9)
        if converged or close or rounds == 1 or remaining(lp_deadline) <= 0:
            plan = try_round(cp, lp, best_price, deadline) or incumbent
            place_left_out(cp, plan, best_price, deadline)
            improve_moves(cp, plan, deadline)
            rounded = True
            consider(plan)
        history.append((rounds, round(time.monotonic() - started, 2), round(bound, 2), round(upper, 2)))
        if converged:
            break
    stats.history = history
    stats.rounds, stats.lp_converged, stats.columns = rounds, converged, len(lp.option_columns())
    stats.lp_seconds = round(time.monotonic() - started, 3)
    if not rounded and remaining(deadline) > 0:
        plan = (try_round(cp, lp, best_price, deadline) if solved else None) or incumbent
        if plan is incumbent:
            plan = Plan(incumbent.cluster.copy(), incumbent.start.copy())
        place_left_out(cp, plan, best_price, deadline)
        improve_moves(cp, plan, deadline)
        consider(plan)
    stats.rounded_objective = upper
    stats.round_seconds = round(time.monotonic() - started, 3)

    # A MILP run may take a moment to notice its interrupt; it stops early enough for that to fit in the
    # limit (past the hard guard its plan would be lost, solve.py).
    mip_deadline = deadline - min(MIP_STOP_MARGIN_S, MIP_STOP_MARGIN_SHARE * budget_s)
    # With few jobs per class the MILP gets a share of the time first (it proves small instances at once) and
    # ruin and recreate the rest; with large classes the MILP gets it all.
    few_per_class = cp.n <= CARBON_RUIN_UP_TO_JOBS_PER_CLASS * cp.classes
    if upper - lower > target() + 1e-9 and remaining(mip_deadline) > 0.05:
        mip_stop = mip_deadline
        if few_per_class:
            mip_stop = time.monotonic() + (1 - CARBON_RUIN_SHARE) * remaining(mip_deadline)
        if solver == "cbc":
            mip = solve_restricted_mip_pulp(
                cp, lp, best_price, best, incumbent, upper, lower, solver, mip_stop, target()
            )
            exact_bound = None  # the penalised form's bound is not on this level
        else:
            mip = solve_restricted_milp(
                cp,
                prices,
                best_price,
                best,
                upper - lower,
                incumbent,
                np.zeros(cp.classes),
                floor,
                mip_stop,
                target(),
            )
            exact_bound = mip.bound if mip.exact else None
        stats.mip, stats.mip_exact = mip.outcome, mip.exact
        if mip.plan is not None:
            consider(mip.plan)
        if exact_bound is not None:
            lower = max(lower, min(upper, exact_bound))
            offer_bounds(carbon=lower)
        stats.mip_seconds = round(time.monotonic() - started, 3)
    if few_per_class and upper - lower > target() + 1e-9 and remaining(mip_deadline) > 0.05:
        # Several jobs moved at once, by the LP's prices: cheaper plans that single moves cannot reach (and
        # room for jobs left out, which lifts the weight).
        moved = Plan(incumbent.cluster.copy(), incumbent.start.copy())
        stats.carbon_ruin_kept = ruin_and_recreate_carbon(
            cp, moved, best_price, mip_deadline, stop_at=lower + target()
        )
        consider(moved)
        stats.carbon_ruin_seconds = round(time.monotonic() - started, 3)
    if lower > upper + 1e-6 * max(1.0, abs(upper)):
        log.warning("bound above the plan's objective", extra={"bound": lower, "objective": upper})
    lower = min(lower, upper)
    proven = upper - lower <= target() + 1e-9 and placed_weight(cp, incumbent) == weight_bound
    timed_out = not proven and remaining(deadline) <= 0.05
    return ModelOutcome(incumbent, upper, lower, weight_bound, proven, timed_out, stats, multipliers)
