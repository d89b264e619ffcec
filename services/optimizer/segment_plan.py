"""CASPIAN with interruptible jobs: the plain jobs by the column-generation model, then every interruptible job
on its cheapest (cluster, segment pattern) in the capacity they leave, then passes of re-pricing each
interruptible job against the others (each move can only lower the objective).

Bound, true whatever the capacity: when every placeable job is placed, the plain model's own bound on the
plain jobs (no plan places them for less, with or without the interruptible jobs beside them) plus, per
interruptible job, its cheapest pattern with capacity ignored (segments.py). Otherwise solve.py's covering
bound with each interruptible class at its capacity-free minimum. The gap reported is against that bound, so
a plan that the sequence made worse than a joint model would shows it as gap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from services.optimizer.compiled import Compiled, compile_problem
from services.optimizer.model import solve_caspian
from services.optimizer.plan import Plan
from services.optimizer.segments import (
    SegmentSpec,
    best_on_clusters,
    capacity_free_minimum,
    segment_spec,
    segments_cost,
)
from services.optimizer.solvers import remaining

REPRICE_PASSES = 3


@dataclass
class SegmentOutcome:
    plan: Plan
    carbon_bound: float
    weight_bound: int | None
    proven: bool
    note: str


def interruptible_jobs(cp: Compiled) -> list[int]:
    return [j for j in range(cp.n) if cp.problem.jobs[j].interruptible is not None]


def solve_with_segments(cp: Compiled, mip_gap: float, deadline: float, budget_s: float) -> SegmentOutcome:
    specs: dict[int, SegmentSpec] = {}
    for j in interruptible_jobs(cp):
        spec = segment_spec(cp, j)
        if spec is not None and cp.reason[j] is None:
            specs[j] = spec
    plain = [j for j in range(cp.n) if cp.problem.jobs[j].interruptible is None]
    sub = replace(cp.problem, jobs=tuple(cp.problem.jobs[j] for j in plain))
    cp_plain = compile_problem(sub, cp.options)
    # The plain model gets most of the time; the interruptible jobs' programmes are fast.
    share = 0.7 * (deadline - _now())
    outcome = solve_caspian(cp_plain, cp.options.solver.value, mip_gap, _now() + share, budget_s * 0.7)
    plan = Plan.empty(cp.n)
    free = cp.free.copy()
    for i, j in enumerate(plain):
        c = int(outcome.plan.cluster[i])
        if c >= 0:
            s = int(outcome.plan.start[i])
            plan.place(j, c, s)
            free[c, s : s + int(cp.duration[j])] -= cp.req[j]

    # Tightest windows first, then the largest jobs.
    def tightness(j: int) -> tuple[int, float]:
        spec = specs[j]
        return (spec.end - spec.first - spec.run_slots(1), -float(cp.req[j].sum()))

    order = sorted(specs, key=tightness)
    for j in order:
        if remaining(deadline) <= 0:
            break
        found = best_on_clusters(cp, j, specs[j], free)
        if found is not None:
            _, c, segments = found
            plan.place_segments(j, c, segments)
            for a, b in segments:
                free[c, a:b] -= cp.req[j]
    for _ in range(REPRICE_PASSES):
        moved = 0
        for j in order:
            if remaining(deadline) <= 0 or j not in plan.segments:
                continue
            c = int(plan.cluster[j])
            now = segments_cost(cp, j, c, plan.segments[j])
            for a, b in plan.segments[j]:
                free[c, a:b] += cp.req[j]
            found = best_on_clusters(cp, j, specs[j], free)
            if found is not None and found[0] < now - 1e-9:
                plan.place_segments(j, found[1], found[2])
                moved += 1
            c = int(plan.cluster[j])
            for a, b in plan.segments[j]:
                free[c, a:b] -= cp.req[j]
        if not moved:
            break

    all_placed = all(plan.cluster[j] >= 0 for j in range(cp.n) if cp.reason[j] is None)
    carbon_bound = -math.inf
    if all_placed:
        minima = [capacity_free_minimum(cp, j, specs[j]) for j in specs]
        carbon_bound = outcome.carbon_bound + float(sum(minima))
    weight_bound = None
    if outcome.weight_bound is not None:
        weight_bound = outcome.weight_bound + int(sum(int(cp.weight[j]) for j in specs))
    objective = sum(segments_cost(cp, j, int(plan.cluster[j]), plan.segments[j]) for j in plan.segments)
    objective += sum(
        cp.option_cost(j, int(plan.cluster[j]), int(plan.start[j]))
        for j in np.nonzero(plan.placed)[0].tolist()
        if j not in plan.segments
    )
    proven = all_placed and objective - carbon_bound <= mip_gap * max(abs(objective), 1e-9)
    note = f"{outcome.stats.describe()}; segments: {len(plan.segments)} of {len(specs)} interruptible jobs placed"
    return SegmentOutcome(plan, carbon_bound, weight_bound, proven, note)


def _now() -> float:
    import time

    return time.monotonic()
