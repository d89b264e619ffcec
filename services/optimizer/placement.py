"""The placement level of the lexicographic objective: the most priority weight any plan can place.

The model with every option's cost set to zero and a job left out costing its weight is the least weight left
out. Its Lagrangian bound (pricing.py, penalty w_k) proves how much weight must be left out, so
`weight_bound = W_all - ceil(L(lam))` is a proven upper bound on the weight any feasible plan places (weights
are integers). The plan comes from rounding that LP with carbon as the tie-breaker, the repair of jobs left
out, and, while a job may still fit, the restricted MILP on the same model.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import numpy as np

from services.optimizer.columns import cheapest_options, improving_options
from services.optimizer.compiled import Compiled
from services.optimizer.guard import offer, offer_bounds
from services.optimizer.master_lp import MasterLP
from services.optimizer.plan import Plan, lexicographically_better, placed_weight
from services.optimizer.pricing import LagrangianPrices
from services.optimizer.repair import place_left_out
from services.optimizer.restricted_mip import solve_restricted_milp
from services.optimizer.rounding import try_round
from services.optimizer.ruin_recreate import ruin_and_recreate
from services.optimizer.solvers import Outcome, remaining

MAX_ROUNDS = 200
COLUMNS_PER_ROUND = 3
INITIAL_OPTIONS = 3
# A bound within this of an integer is that integer (LP tolerances).
INTEGRAL_TOL = 1e-6
# Share of the time left after rounding that ruin and recreate may use before the restricted MILP.
RUIN_SHARE = 0.7
# Ruin and recreate moves jobs one at a time; where identical jobs make large classes (bursts), the restricted
# MILP's class counts do better with the time (D96-burst-0 at 30 s: 4,418 placed with it, 4,427 without).
RUIN_UP_TO_JOBS_PER_CLASS = 4.0
# Once a simplex run of the master takes longer than this, the interior point method takes over (master_lp.py):
# D96-1000-0's master converges in 3.2 s instead of 8.5 s, and H288-25-0's proves 1,756 in 21 s instead of nothing.
INTERIOR_AFTER_S = 0.2


@dataclass
class PlacementLevel:
    plan: Plan
    weight_bound: int | None  # proven upper bound on the weight any plan places
    rounds: int = 0
    mip: str | None = None


def weight_model(cp: Compiled) -> Compiled:
    """The level's model: every allowed option costs 0 and a job left out costs its weight."""
    return dataclasses.replace(cp, cost=np.where(np.isfinite(cp.cost), 0.0, np.inf), penalty_unit=1.0)


def maximise_placement(cp: Compiled, incumbent: Plan, lp_deadline: float, deadline: float) -> PlacementLevel:
    """Raise the weight the incumbent places toward the most any plan can, and prove how much that is."""
    total = int((cp.weight[cp.class_job] * cp.count).sum())
    finite = np.isfinite(cp.cost)
    shadow = weight_model(cp)
    prices = LagrangianPrices(shadow)  # leaving a job out costs its weight
    lp = MasterLP(shadow, prices, interior_after_s=INTERIOR_AFTER_S)
    placed = incumbent.cluster >= 0
    lp.add(cp.job_class[placed], incumbent.cluster[placed], incumbent.start[placed])
    lp.add(*cheapest_options(cp.cost, INITIAL_OPTIONS))

    lower = 0.0
    lam_best = prices.zero()
    best = np.minimum(0.0, prices.penalty)
    rounds = 0
    solved = False
    while rounds < MAX_ROUNDS and remaining(lp_deadline) > 0:
        rounds += 1
        if lp.solve(lp_deadline) != Outcome.OPTIMAL:
            break
        solved = True
        sigma, lam = lp.duals()
        price = prices.price(lam)
        bound, class_best = prices.bound(lam, price)
        if bound > lower:
            lower, best, lam_best = bound, class_best, lam
        left = total - placed_weight(cp, incumbent)
        if math.ceil(lower - INTEGRAL_TOL) >= left:
            break
        if not lp.add(*improving_options(price, sigma, lp.in_lp, COLUMNS_PER_ROUND)):
            break
    weight_bound = total - max(0, math.ceil(lower - INTEGRAL_TOL))
    offer_bounds(weight=weight_bound)
    level = PlacementLevel(incumbent, weight_bound, rounds)
    if placed_weight(cp, incumbent) >= weight_bound or not solved:
        return level

    # Capacity prices first (a unit of weight outweighs any carbon), carbon to tell options apart.
    price_best = prices.price(lam_best)
    guide = cp.cost + cp.penalty_unit * price_best
    plan = try_round(shadow, lp, guide, deadline, fractional=True)
    if plan is not None:
        place_left_out(cp, plan, guide, deadline)
        if lexicographically_better(cp, plan, level.plan):
            level.plan = plan
            offer(plan)
    few_per_class = cp.n <= RUIN_UP_TO_JOBS_PER_CLASS * cp.classes
    if few_per_class and placed_weight(cp, level.plan) < weight_bound and remaining(deadline) > 0:
        plan = Plan(level.plan.cluster.copy(), level.plan.start.copy())
        ruin_deadline = time.monotonic() + RUIN_SHARE * remaining(deadline)
        if ruin_and_recreate(cp, plan, guide, ruin_deadline, target=weight_bound) > 0:
            level.plan = plan
            offer(plan)
    gap = total - placed_weight(cp, level.plan) - lower
    if placed_weight(cp, level.plan) < weight_bound and remaining(deadline) > 0:
        # The MILP maximises the weight placed (each option earns -w_k, leaving out costs 0): the same model,
        # on which HiGHS finds full plans sooner than on "least weight left out". Its reduced costs are the
        # same, shifted by w_k. A plan placing more leaves out at most (left - 1), so options whose reduced
        # cost exceeds that are out of it.
        weight = cp.weight[cp.class_job].astype(float)
        earn = dataclasses.replace(
            cp, cost=np.where(finite, -weight[:, None, None], np.inf), penalty_unit=1.0
        )
        mip = solve_restricted_milp(
            earn,
            LagrangianPrices(earn),
            price_best - weight[:, None, None],
            best - weight,
            gap - 1 + 2 * INTEGRAL_TOL,
            level.plan,
            np.zeros(cp.classes),
            None,
            deadline,
            1 - 2 * INTEGRAL_TOL,
            presolve=True,
        )
        level.mip = mip.outcome
        if mip.plan is not None and placed_weight(cp, mip.plan) > placed_weight(cp, level.plan):
            level.plan = mip.plan
        if mip.exact and mip.bound is not None:
            level.weight_bound = min(weight_bound, int(math.floor(-mip.bound + INTEGRAL_TOL)))
    return level
