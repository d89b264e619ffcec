"""Every plan is checked against the constraints before it is answered, whichever policy made it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from services.optimizer.compiled import Compiled
from services.optimizer.plan import Plan
from services.optimizer.segments import segment_spec


@dataclass(frozen=True)
class Violation:
    job: int
    what: str


def _segment_rules(cp: Compiled, j: int, segments: list[tuple[int, int]]) -> str:
    """What breaks the job's segment rules (segments.py), re-derived from the job itself; '' when nothing."""
    spec = segment_spec(cp, j)
    if spec is None:
        return "placed in segments but not interruptible"
    if not segments:
        return "no segments"
    for (a, b), (a2, _) in zip(segments, segments[1:], strict=False):
        if not a < b < a2:
            return f"segments [{a}, {b}) and [{a2}, ...) overlap, touch or are out of order"
    if segments[-1][0] >= segments[-1][1]:
        return "an empty segment"
    if segments[0][0] < spec.first:
        return f"starts at slot {segments[0][0]}, before its earliest slot {spec.first}"
    if segments[-1][1] > spec.end:
        return f"ends at slot {segments[-1][1]}, after its deadline slot {spec.end}"
    short = [b - a for a, b in segments if b - a < spec.min_len]
    if short:
        return f"a segment of {short[0]} slots is shorter than the minimum of {spec.min_len}"
    k = len(segments)
    for i, (a, b) in enumerate(segments):
        overhead = spec.first_overhead if i == 0 else spec.overhead
        if b - a <= overhead:
            return f"segment {i} of {b - a} slots does no work beyond its overhead of {overhead}"
    if spec.max_segments is not None and k > spec.max_segments:
        return f"{k} segments, more than the {spec.max_segments} its pauses allow"
    ran = sum(b - a for a, b in segments)
    if ran != spec.run_slots(k):
        return f"runs {ran} slots, not the {spec.run_slots(k)} its work and {k} segments need"
    return ""


def verify_plan(cp: Compiled, plan: Plan, soft_deadlines: bool = False) -> list[Violation]:
    """Allowed cluster, window (earliest start, deadline unless soft, horizon), segment rules and capacity per
    (cluster, slot, resource) with the reservations. A capacity breach names every job in the cell."""
    violations: list[Violation] = []
    usage = np.zeros_like(cp.free)
    placed: list[int] = np.nonzero(plan.cluster >= 0)[0].tolist()
    spans: dict[int, list[tuple[int, int]]] = {}
    for j in placed:
        c, s, d = int(plan.cluster[j]), int(plan.start[j]), int(cp.duration[j])
        if not 0 <= c < cp.clusters:
            violations.append(Violation(j, f"unknown cluster index {c}"))
            continue
        if not cp.allowed[j, c]:
            violations.append(Violation(j, f"cluster {cp.names[c]} is not allowed for the job"))
        if j in plan.segments:
            segments = plan.segments[j]
            broken = _segment_rules(cp, j, segments)
            if broken:
                violations.append(Violation(j, broken))
            if any(a < 0 or b > cp.slots for a, b in segments):
                violations.append(Violation(j, f"a segment leaves the horizon of {cp.slots}"))
                continue
            if segments and segments[0][0] != s:
                violations.append(Violation(j, "the start is not the first segment's"))
            spans[j] = segments
            for a, b in segments:
                usage[c, a:b] += cp.req[j]
            continue
        if s < cp.earliest[j]:
            violations.append(Violation(j, f"starts at slot {s}, before its earliest slot {cp.earliest[j]}"))
        if s + d > cp.slots or s < 0:
            violations.append(Violation(j, f"slots {s}..{s + d - 1} leave the horizon of {cp.slots}"))
            continue
        if not soft_deadlines and s > cp.deadline_latest[j]:
            violations.append(Violation(j, f"starting at slot {s} ends after the deadline"))
        spans[j] = [(s, s + d)]
        usage[c, s : s + d] += cp.req[j]
    over = (usage > 0) & (usage > cp.free + 1e-6)
    if over.any():
        cells = {(int(c), int(t)) for c, t, _ in zip(*np.nonzero(over), strict=True)}
        for j, segments in spans.items():
            c = int(plan.cluster[j])
            if any((c, t) in cells for a, b in segments for t in range(a, b)):
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
        plan.unplace(worst.job)
        removed.append(worst)
