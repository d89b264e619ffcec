"""A plan (cluster and start slot per job) and the capacity ledger that builds it one placement at a time."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from services.optimizer.compiled import RESOURCES, Compiled, fit_starts
from services.optimizer.segments import segments_cost, segments_emissions


class Ledger:
    """Free capacity per cluster, slot and resource, as placements take it."""

    def __init__(self, free: np.ndarray):
        self.free = free.copy()

    def fits(self, req: np.ndarray, width: int, first: int = 0, last: int | None = None) -> np.ndarray:
        """[C, T] bool: where a job needing `req` for `width` slots can start now, among starts
        [first, last]."""
        return fit_starts(self.free, req, width, first, last)

    def copies(self, c: int, s: int, width: int, req: np.ndarray) -> int:
        """How many jobs needing `req` for `width` slots fit side by side at (c, s)."""
        best = np.inf
        window = self.free[c, s : s + width]
        for r in range(RESOURCES):
            if req[r] > 0:
                best = min(best, float(window[:, r].min()) // req[r])
        return int(max(0, best)) if np.isfinite(best) else 1 << 30

    def take(self, c: int, s: int, width: int, req: np.ndarray, count: int = 1) -> None:
        self.free[c, s : s + width] -= count * req

    def load(self, capacity: np.ndarray, s: int, width: int) -> np.ndarray:
        """[C]: the largest used share of any resource over [s, s+width), per cluster."""
        used = 1.0 - self.free[:, s : s + width] / np.where(capacity > 0, capacity, 1.0)[:, None, :]
        used = np.where(capacity[:, None, :] > 0, used, 0.0)
        return used.max(axis=(1, 2))


@dataclass
class Plan:
    cluster: np.ndarray  # [n] cluster index, -1 when not placed
    start: np.ndarray  # [n] start slot, -1 when not placed
    notes: dict[int, str] = field(default_factory=dict)
    # Interruptible jobs placed in segments: job -> [(start_slot, end_slot)], start is the first's.
    segments: dict[int, list[tuple[int, int]]] = field(default_factory=dict)

    @classmethod
    def empty(cls, n: int) -> Plan:
        return cls(np.full(n, -1, dtype=np.int64), np.full(n, -1, dtype=np.int64))

    def place(self, j: int, c: int, s: int) -> None:
        self.cluster[j] = c
        self.start[j] = s
        self.segments.pop(j, None)

    def place_segments(self, j: int, c: int, segments: list[tuple[int, int]]) -> None:
        self.cluster[j] = c
        self.start[j] = segments[0][0]
        self.segments[j] = list(segments)

    def unplace(self, j: int) -> None:
        self.cluster[j] = -1
        self.start[j] = -1
        self.segments.pop(j, None)

    @property
    def placed(self) -> np.ndarray:
        return self.cluster >= 0


def ledger_of(cp: Compiled, plan: Plan) -> Ledger:
    """The free capacity left beside `plan`'s placements, each run in one piece from its start."""
    ledger = Ledger(cp.free)
    for j in np.nonzero(plan.cluster >= 0)[0].tolist():
        ledger.take(int(plan.cluster[j]), int(plan.start[j]), int(cp.duration[j]), cp.req[j])
    return ledger


class ClassFiller:
    """Hands the next unplaced member of a class to each placement decided for the class (members the plan
    already places are skipped)."""

    def __init__(self, cp: Compiled, plan: Plan):
        self.cp = cp
        self.plan = plan
        self.queue = cp.members
        if plan.placed.any():
            self.queue = [m[plan.cluster[m] < 0] for m in cp.members]
        self.next = np.zeros(cp.classes, dtype=np.int64)

    def remaining(self, k: int) -> int:
        return int(len(self.queue[k]) - self.next[k])

    def place(self, k: int, c: int, s: int, count: int) -> None:
        for j in self.queue[k][self.next[k] : self.next[k] + count]:
            self.plan.place(int(j), c, s)
        self.next[k] += count


def plan_cost(cp: Compiled, plan: Plan) -> tuple[float, float]:
    """(objective of the placed jobs, penalty of placeable jobs left out)."""
    cost = 0.0
    penalty = 0.0
    for j in range(cp.n):
        k = cp.job_class[j]
        if plan.cluster[j] >= 0:
            c, s = int(plan.cluster[j]), int(plan.start[j])
            value = cp.cost[k, c, s] if k >= 0 else np.inf
            cost += value if np.isfinite(value) else cp.option_cost(j, c, s)
        elif k >= 0:
            penalty += cp.penalty_unit * float(cp.weight[j])
    return cost, penalty


def job_emissions(cp: Compiled, plan: Plan, j: int) -> float:
    """Reported emissions of placed job j, in one piece or in segments."""
    if j in plan.segments:
        return segments_emissions(cp, j, int(plan.cluster[j]), plan.segments[j])
    return cp.emissions(j, int(plan.cluster[j]), int(plan.start[j]))


def plan_emissions(cp: Compiled, plan: Plan) -> float:
    return float(sum(job_emissions(cp, plan, j) for j in np.nonzero(plan.placed)[0].tolist()))


def capacity_free_bound(
    cp: Compiled, min_weight: float | None = None, class_best: np.ndarray | None = None
) -> float:
    """A true lower bound, cheap to compute, on the cost of every plan placing at least `min_weight` (all
    placeable jobs when None): capacity ignored, each job at its cheapest option, and the cheapest jobs per
    unit of weight first (the LP relaxation of that covering problem: a fractional last class)."""
    if cp.classes == 0:
        return 0.0
    best = cp.cost.reshape(cp.classes, -1).min(axis=1) if class_best is None else class_best
    if min_weight is None:
        return float((best * cp.count).sum())
    weight = cp.weight[cp.class_job].astype(float)
    # Jobs that cost nothing or less are always worth taking; the rest by cost per unit of weight.
    total = float((np.minimum(best, 0.0) * cp.count).sum())
    need = float(min_weight) - float((weight * cp.count)[best <= 0].sum())
    for k in np.argsort(best / weight, kind="stable"):
        if need <= 0:
            break
        if best[k] <= 0:
            continue
        take = min(float(cp.count[k]), need / weight[k])
        total += take * float(best[k])
        need -= take * weight[k]
    return total


def placed_weight(cp: Compiled, plan: Plan) -> int:
    """Priority weight of the placed jobs: the first level of the lexicographic objective."""
    return int(cp.weight[plan.placed].sum())


def class_cost(cp: Compiled, plan: Plan) -> float:
    """The model's carbon level: the option costs of the placed jobs, from the class cost arrays."""
    placed = plan.cluster >= 0
    k = cp.job_class
    return float(cp.cost[k[placed], plan.cluster[placed], plan.start[placed]].sum())


def lexicographically_better(cp: Compiled, plan: Plan, than: Plan) -> bool:
    """More weight placed, or as much at a lower cost."""
    a, b = placed_weight(cp, plan), placed_weight(cp, than)
    return a > b or (
        a == b and class_cost(cp, plan) < class_cost(cp, than) - 1e-9 * max(1.0, class_cost(cp, than))
    )


def left_out_penalty(cp: Compiled, plan: Plan) -> float:
    """What the model charges for the placeable jobs the plan leaves out."""
    left = (plan.cluster < 0) & (cp.job_class >= 0)
    return float(cp.penalty_unit * cp.weight[left].sum())


def penalised_cost(cp: Compiled, plan: Plan) -> float:
    """The model's objective: the placed jobs' option costs plus the penalty of the placeable jobs left out."""
    placed = plan.cluster >= 0
    k = cp.job_class
    cost = cp.cost[k[placed], plan.cluster[placed], plan.start[placed]].sum()
    return float(cost) + left_out_penalty(cp, plan)


def placed_cost(cp: Compiled, plan: Plan) -> float:
    """The reported objective: option costs (emissions, preference, migration, lateness) of the placed jobs,
    computed per job so that it holds for any plan, including one with placements outside the options."""
    return float(
        sum(
            segments_cost(cp, j, int(plan.cluster[j]), plan.segments[j])
            if j in plan.segments
            else cp.option_cost(j, int(plan.cluster[j]), int(plan.start[j]))
            for j in np.nonzero(plan.placed)[0].tolist()
        )
    )
