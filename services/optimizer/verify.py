"""Every plan is checked against the constraints before it is answered, whichever policy made it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from services.optimizer.compiled import Compiled
from services.optimizer.plan import Plan


@dataclass(frozen=True)
class Violation:
    job: int
    what: str


def verify_plan(cp: Compiled, plan: Plan, soft_deadlines: bool = False) -> list[Violation]:
    """Allowed cluster, window (earliest start, deadline unless soft, horizon) and capacity per
    (cluster, slot, resource) with the reservations. A capacity breach names every job in the cell."""
    violations: list[Violation] = []
    usage = np.zeros_like(cp.free)
    placed: list[int] = np.nonzero(plan.cluster >= 0)[0].tolist()
    for j in placed:
        c, s, d = int(plan.cluster[j]), int(plan.start[j]), int(cp.duration[j])
        if not 0 <= c < cp.clusters:
            violations.append(Violation(j, f"unknown cluster index {c}"))
            continue
        if not cp.allowed[j, c]:
            violations.append(Violation(j, f"cluster {cp.names[c]} is not allowed for the job"))
        if s < cp.earliest[j]:
            violations.append(Violation(j, f"starts at slot {s}, before its earliest slot {cp.earliest[j]}"))
        if s + d > cp.slots or s < 0:
            violations.append(Violation(j, f"slots {s}..{s + d - 1} leave the horizon of {cp.slots}"))
            continue
        if not soft_deadlines and s > cp.deadline_latest[j]:
            violations.append(Violation(j, f"starting at slot {s} ends after the deadline"))
        usage[c, s : s + d] += cp.req[j]
    over = (usage > 0) & (usage > cp.free + 1e-6)
    if over.any():
        cells = {(int(c), int(t)) for c, t, _ in zip(*np.nonzero(over), strict=True)}
        for j in placed:
            c, s, d = int(plan.cluster[j]), int(plan.start[j]), int(cp.duration[j])
            if any((c, t) in cells for t in range(s, s + d)):
                violations.append(Violation(j, f"capacity exceeded on {cp.names[c]}"))
    return violations


def remove_violations(cp: Compiled, plan: Plan, soft_deadlines: bool = False) -> list[Violation]:
    """Unplace offending jobs, latest starts first, until the plan verifies; returns what was removed."""
    removed: list[Violation] = []
    while True:
        found = verify_plan(cp, plan, soft_deadlines)
        if not found:
            return removed
        worst = max(found, key=lambda v: (plan.start[v.job], v.job))
        plan.cluster[worst.job] = -1
        plan.start[worst.job] = -1
        removed.append(worst)
