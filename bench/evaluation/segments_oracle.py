"""An independent check of the segment oracle: a time-indexed MILP of the same problem, for small instances.

The oracle (oracle.py) solves interruptible jobs with the optimizer's own model: a column per (job, cluster,
segment pattern) priced by an exact dynamic programme (services/optimizer/segments.py). This module states
the same problem another way, with a binary per slot, so that the two can be compared, and both against
brute force (tests/evaluation/test_segments_oracle.py).

For every job j, allowed cluster c and slot t of the job's window:
    z[j,c]    the job runs on c                       sum_c z[j,c] = 1
    x[j,c,t]  it runs in slot t                       x <= z
    y[j,c,t]  a segment starts at t                   y[t] >= x[t] - x[t-1], y[t] <= x[t], y[t] <= 1 - x[t-1]
    e[j,c,t]  t is its last run slot                  sum_t e = z, e <= x, sum_{u>t} x[u] <= N (1 - e[t])
run slots:    sum_t x = W z + o (sum_t y - z)         (W useful slots, o overhead slots per resume)
min segment:  x[t + d] >= y[t] for d < m              (a segment that cannot last m slots cannot start)
max segments: sum_t y <= K z                          (K = 1 for a job that runs in one piece)
capacity:     sum_j req[j] x[j,c,t] <= free[c,t]      (every resource)
objective:    sum price[j,c,t] x - (1 - frac_j) price[j,c,t] e   (the last useful slot is charged pro rata)

The windows, prices, W, o, m and K come from the optimizer's compiled problem (`compile_problem`,
`segment_spec`), so both read the instance the same way; only the solution method differs. It grows with
(jobs x clusters x window slots), so it is for small instances: a week of 1,000 jobs is the optimizer's job.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pulp

from services.optimizer import problem as domain
from services.optimizer.compiled import compile_problem
from services.optimizer.segments import SegmentSpec, segment_spec, slot_prices, slot_runs


@dataclass(frozen=True)
class TimeIndexedResult:
    status: str  # optimal | not_solved
    objective_g: float
    # job id -> (cluster, [(start_slot, end_slot)]) for every placed job
    plans: dict[str, tuple[str, list[tuple[int, int]]]]


def job_specs(cp) -> list[SegmentSpec | None]:
    """Each job's segment rule on the grid; one piece (K = 1, m = W) for a job that is not interruptible."""
    specs: list[SegmentSpec | None] = []
    for j in range(cp.n):
        spec = segment_spec(cp, j)
        if spec is None and int(cp.latest[j]) >= int(cp.earliest[j]):
            work = int(cp.duration[j])
            first = int(cp.earliest[j])
            spec = SegmentSpec(work, 0, 0, work, 1, first, int(cp.latest[j]) + work, float(cp.frac[j]))
        specs.append(spec)
    return specs


def solve_time_indexed(
    problem: domain.Problem, options: domain.Options, time_limit_s: float = 60.0
) -> TimeIndexedResult:
    cp = compile_problem(problem, options)
    model = pulp.LpProblem("segments_oracle", pulp.LpMinimize)
    objective = []
    usage: dict[tuple[int, int], list] = {}
    runs: dict[tuple[int, int], dict[int, pulp.LpVariable]] = {}
    for j, spec in enumerate(job_specs(cp)):
        if spec is None:
            return TimeIndexedResult("not_solved", float("nan"), {})
        W, o, m = spec.work, spec.overhead, spec.min_len
        limit = spec.max_segments if spec.max_segments is not None else W
        slots = range(max(0, spec.first), min(spec.end, cp.slots))
        choices = []
        for c in range(cp.clusters):
            if not cp.allowed[j, c]:
                continue
            price = slot_prices(cp, j, c)
            z = model.add_variable(f"z_{j}_{c}", cat="Binary")
            choices.append(z)
            x = {t: model.add_variable(f"x_{j}_{c}_{t}", cat="Binary") for t in slots}
            y = {t: model.add_variable(f"y_{j}_{c}_{t}", cat="Binary") for t in slots}
            e = {t: model.add_variable(f"e_{j}_{c}_{t}", cat="Binary") for t in slots}
            runs[(j, c)] = x
            for t in slots:
                before = x.get(t - 1, 0)
                model += x[t] <= z
                model += y[t] >= x[t] - before
                model += y[t] <= x[t]
                model += y[t] <= 1 - before
                model += e[t] <= x[t]
                later = [x[u] for u in slots if u > t]
                if later:
                    model += pulp.lpSum(later) <= len(later) * (1 - e[t])
                for d in range(1, m):
                    model += (x[t + d] >= y[t]) if t + d in x else (y[t] == 0)
                usage.setdefault((c, t), []).append((j, x[t]))
                objective.append(float(price[t]) * x[t] - (1 - spec.last_frac) * float(price[t]) * e[t])
            model += pulp.lpSum(e.values()) == z
            model += pulp.lpSum(x.values()) == W * z + o * (pulp.lpSum(y.values()) - z)
            model += pulp.lpSum(y.values()) <= limit * z
        model += pulp.lpSum(choices) == 1
    for (c, t), users in usage.items():
        for r in range(cp.req.shape[1]):
            if any(cp.req[j, r] for j, _ in users):
                model += pulp.lpSum(float(cp.req[j, r]) * v for j, v in users) <= float(cp.free[c, t, r])
    model += pulp.lpSum(objective)
    model.solve(pulp.HiGHS(msg=False, gapRel=1e-9, timeLimit=time_limit_s))
    if pulp.LpStatus[model.status] != "Optimal":
        return TimeIndexedResult("not_solved", float("nan"), {})
    plans = {}
    for (j, c), x in runs.items():
        ran = sorted(t for t, v in x.items() if (v.value() or 0) > 0.5)
        if ran:
            plans[problem.jobs[j].id] = (problem.clusters[c].name, slot_runs(ran))
    return TimeIndexedResult("optimal", float(pulp.value(model.objective)), plans)


def pattern_price(price: np.ndarray, segments: list[tuple[int, int]], last_frac: float) -> float:
    """A pattern's price: every run slot in full, the last one pro rata (the optimizer's rule)."""
    total = sum(float(price[a:b].sum()) for a, b in segments)
    last = segments[-1][1] - 1
    return total - (1 - last_frac) * float(price[last])
