"""CASPIAN with interruptible jobs: the model (model.py) places every job in one piece, then each interruptible
job is re-priced against the rest of the plan: taken out, and put back on its cheapest (cluster, segment
pattern) in the room the others leave (segments.py, exact for one job). A move is made only when it is
cheaper, so the plan is never worse than CASPIAN's plan in one piece; passes repeat while they find moves
and time is left.

Bound, true whatever the capacity: when every placeable job is placed, the Lagrangian bound of pricing.py at
the model's best capacity multipliers, with each interruptible job's options being its segment patterns,
priced by the programme (`lagrangian_bound`); otherwise solve.py's covering bound with each interruptible
class at its cheapest pattern with capacity ignored. The gap reported is against it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from services.optimizer.compiled import Compiled
from services.optimizer.model import solve_caspian
from services.optimizer.plan import Plan
from services.optimizer.pricing import LagrangianPrices
from services.optimizer.segments import (
    SegmentSpec,
    best_on_clusters,
    cheapest_pattern,
    pattern_floor,
    segment_spec,
    segments_cost,
    slot_prices,
)
from services.optimizer.solvers import remaining

MAX_PASSES = 3
# Share of the time left that the one-piece model may use; the re-pricing passes get the rest.
MODEL_SHARE = 0.7


@dataclass
class SegmentOutcome:
    plan: Plan
    carbon_bound: float
    weight_bound: int | None
    proven_weight: bool
    note: str


def interruptible_jobs(cp: Compiled) -> list[int]:
    return [j for j in range(cp.n) if cp.problem.jobs[j].interruptible is not None]


def _one_piece_fits(spec: SegmentSpec, s: int, d: int) -> bool:
    """A one-piece placement is a one-segment pattern when it pays no overhead and ends in the window."""
    return d == spec.run_slots(1) and spec.first <= s and s + d <= spec.end


def solve_with_segments(cp: Compiled, mip_gap: float, deadline: float, budget_s: float) -> SegmentOutcome:
    specs: dict[int, SegmentSpec] = {}
    for j in interruptible_jobs(cp):
        spec = segment_spec(cp, j)
        if spec is not None and cp.reason[j] is None:
            specs[j] = spec
    model_deadline = time.monotonic() + MODEL_SHARE * max(0.0, deadline - time.monotonic())
    outcome = solve_caspian(cp, cp.options.solver.value, mip_gap, model_deadline, budget_s * MODEL_SHARE)
    plan = outcome.plan
    free = cp.free.copy()
    for j in np.nonzero(plan.placed)[0].tolist():
        c, s, d = int(plan.cluster[j]), int(plan.start[j]), int(cp.duration[j])
        if j in specs and not _one_piece_fits(specs[j], s, d):
            plan.unplace(j)  # re-placed below by its own programme
            continue
        if j in specs:
            plan.place_segments(j, c, [(s, s + d)])
        free[c, s : s + d] -= cp.req[j]

    # Only a job that can split, or that the plan leaves out or runs in one piece without its resume, can
    # gain: the model already placed the others at their best one-piece option. Left-out jobs first, then
    # the most power-hungry.
    def may_gain(j: int) -> bool:
        return specs[j].can_split or plan.cluster[j] < 0

    order = sorted(
        (j for j in specs if may_gain(j)),
        key=lambda j: (bool(plan.cluster[j] >= 0), -float(cp.watts[j].max())),
    )
    moves = 0
    for _ in range(MAX_PASSES):
        moved = 0
        for j in order:
            if remaining(deadline) <= 0:
                break
            now = np.inf
            c = int(plan.cluster[j])
            if c >= 0:
                now = _cost(cp, plan, j)
                for a, b in _runs(cp, plan, j):
                    free[c, a:b] += cp.req[j]
            found = best_on_clusters(cp, j, specs[j], free, beat=now)
            if found is not None and found[0] < now - 1e-9 * max(1.0, abs(found[0])):
                plan.place_segments(j, found[1], found[2])
                moved += 1
            c = int(plan.cluster[j])
            if c >= 0:
                for a, b in _runs(cp, plan, j):
                    free[c, a:b] -= cp.req[j]
        moves += moved
        if not moved or remaining(deadline) <= 0:
            break
    placed_all = all(plan.cluster[j] >= 0 for j in range(cp.n) if cp.reason[j] is None)
    carbon_bound = -np.inf
    if placed_all and remaining(deadline) > 0:
        carbon_bound = lagrangian_bound(cp, specs, outcome.multipliers, deadline)
    note = f"{outcome.stats.describe()}; segments: {moves} moves, {len(plan.segments)} of {len(specs)} in segments"
    weight_bound = outcome.weight_bound
    return SegmentOutcome(plan, carbon_bound, weight_bound, placed_all, note)


def _runs(cp: Compiled, plan: Plan, j: int) -> list[tuple[int, int]]:
    if j in plan.segments:
        return plan.segments[j]
    s = int(plan.start[j])
    return [(s, s + int(cp.duration[j]))]


def _cost(cp: Compiled, plan: Plan, j: int) -> float:
    c = int(plan.cluster[j])
    if j in plan.segments:
        return segments_cost(cp, j, c, plan.segments[j])
    return cp.option_cost(j, c, int(plan.start[j]))


def lagrangian_bound(
    cp: Compiled, specs: dict[int, SegmentSpec], lam: np.ndarray | None, deadline: float | None = None
) -> float:
    """A true lower bound on the cost of every plan placing every placeable job, segments allowed:

        L(lam) = sum_j min over j's options (cost + lam . usage) - lam . free

    for any lam >= 0 (weak duality), with the model's best multipliers. A plain class's options are its
    one-piece starts (a superset of a job's one-segment patterns); an interruptible job's are its patterns,
    priced by the programme with each slot held charged lam . req in full. The lateness tie-breaker of a
    pattern is left out (>= 0), which only lowers the bound. -inf (no bound) when `deadline` passes first."""
    prices = LagrangianPrices(cp)
    if lam is None:
        lam = prices.zero()
    price = prices.price(lam)
    cheapest = price.reshape(cp.classes, -1).min(axis=1) if cp.classes else np.zeros(0)
    total = 0.0
    for k in range(cp.classes):
        if deadline is not None and k % 16 == 0 and remaining(deadline) <= 0:
            return -np.inf
        j = int(cp.class_job[k])
        if j not in specs:
            total += float(cheapest[k]) * int(cp.count[k])
            continue
        best = float(cheapest[k])
        if not specs[j].can_split:
            # The patterns are one-piece runs, all among the class's options.
            total += best * int(cp.count[k])
            continue
        for c in np.nonzero(cp.allowed[j])[0].tolist():
            slot = slot_prices(cp, j, c)
            hold = lam[c] @ prices.req[k]
            migration = cp.options.migration_cost_gco2 if 0 <= cp.current[j] != c else 0.0
            anywhere = np.ones(cp.slots, dtype=bool)
            if pattern_floor(specs[j], slot + hold, anywhere) + migration >= best:
                continue
            found = cheapest_pattern(specs[j], slot, anywhere, hold)
            if found is not None:
                best = min(best, found[0] + migration)
        total += best * int(cp.count[k])
    return total - float((lam * prices.free).sum())
