"""An independent exact model of an optimizer problem: one binary per (job, cluster, start slot), on HiGHS.

It shares nothing with services/optimizer but the problem types and the energy model (services/common/energy):
windows, costs and capacity rows are computed here from the grid definition. It solves the lexicographic
objective in two MILPs: the most priority weight placed, then, with at least that weight placed, the least
cost (emissions with the lateness tie-breaker; preference and migration terms are not modelled, so problems
that use them are refused). Each level reports its proven bound, so a stopped run still bounds the truth.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

import highspy
import numpy as np

from services.common.energy import job_watts
from services.optimizer.problem import Options, Problem

LATENESS_DEFAULT = Options().lateness_gco2_per_slot


@dataclass(frozen=True)
class ExactResult:
    binaries: int
    max_weight: int | None  # best weight found by level 1
    weight_bound: int | None  # proven upper bound on the weight any plan places
    cost: float | None  # least cost found at max_weight (level 2)
    cost_bound: float | None  # proven lower bound on the cost of plans placing max_weight
    seconds: float
    proven: bool  # both levels solved to optimality


def _options(problem: Problem, lateness: float):
    grid = problem.grid
    L = grid.slot.total_seconds()
    T = grid.slots
    names = [c.name for c in problem.clusters]
    intensity = {f.cluster: np.asarray(f.gco2_per_kwh[:T], float) for f in problem.forecasts}
    cols = []  # (job, cluster, start, cost)
    for j, job in enumerate(problem.jobs):
        if job.preferred_clusters or job.current_cluster:
            raise ValueError("the exact model does not price preference or migration")
        runtime = job.runtime.total_seconds()
        d = max(1, math.ceil(runtime / L - 1e-9))
        first = 0
        if job.earliest_start is not None:
            first = max(0, math.ceil(((job.earliest_start - grid.start).total_seconds() - 1e-6) / L))
        last = T - d
        if job.deadline is not None:
            room = (job.deadline - grid.start).total_seconds() - runtime
            last = min(last, math.floor((room + 1e-6) / L)) if room > -1e-6 else -1
        for c, cluster in enumerate(problem.clusters):
            if job.required_clusters and cluster.name not in job.required_clusters:
                continue
            if cluster.name in job.excluded_clusters:
                continue
            r, cap = job.resources, cluster.capacity
            if r.cpu_millis > cap.cpu_millis or r.memory_bytes > cap.memory_bytes or r.gpus > cap.gpus:
                continue
            watts = job_watts(r.cpu_millis, r.memory_bytes, r.gpus, cluster.power, cap.cpu_millis)
            series = intensity[names[c]]
            for s in range(first, last + 1):
                left, grams, t = runtime, 0.0, s
                while left > 1e-9:
                    piece = min(L, left)
                    grams += watts / 1000.0 * piece / 3600.0 * series[t]
                    left -= piece
                    t += 1
                cols.append((j, c, s, d, grams + lateness * (s - first)))
    return cols


def _run(h: highspy.Highs, deadline: float) -> None:
    h.setOptionValue("time_limit", max(0.01, deadline - time.monotonic()))
    worker = threading.Thread(target=h.run, daemon=True)
    worker.start()
    worker.join()


def solve_exact(
    problem: Problem,
    time_limit_s: float = 60.0,
    lateness: float = LATENESS_DEFAULT,
    min_weight: int | None = None,
    start_plan: dict[int, tuple[int, int]] | None = None,
) -> ExactResult:
    """Both levels in turn; with `min_weight`, level 1 is skipped and level 2 keeps at least that weight (the
    least cost of the plans placing as much as a given plan: that plan's true carbon gap), starting from
    `start_plan` when given."""
    began = time.monotonic()
    cols = _options(problem, lateness)
    n = len(cols)
    T = problem.grid.slots
    names = [c.name for c in problem.clusters]
    free = np.array(
        [[c.capacity.cpu_millis, c.capacity.memory_bytes, c.capacity.gpus] for c in problem.clusters], float
    )
    free = np.repeat(free[:, None, :], T, axis=1)
    for r in problem.reservations:
        a, b = max(0, r.start_slot), min(T, r.end_slot)
        free[names.index(r.cluster), a:b] -= [
            r.resources.cpu_millis,
            r.resources.memory_bytes,
            r.resources.gpus,
        ]
    weights = [1 + min(max(job.priority, 0), 9) for job in problem.jobs]
    J = len(problem.jobs)
    scale = np.maximum(free.max(axis=1), 1.0)  # [C, 3]
    entries: dict[int, list[tuple[int, float]]] = {}  # row -> (col, value)
    for i, (j, c, s, d, _) in enumerate(cols):
        entries.setdefault(j, []).append((i, 1.0))
        need = problem.jobs[j].resources
        for r, amount in enumerate((need.cpu_millis, need.memory_bytes, need.gpus)):
            if amount <= 0:
                continue
            for t in range(s, s + d):
                entries.setdefault(J + (c * T + t) * 3 + r, []).append((i, amount / scale[c, r]))
    rows = sorted(entries)
    h = highspy.Highs()
    h.silent()
    h.setOptionValue("threads", 1)
    inf = highspy.kHighsInf
    h.addVars(n, np.zeros(n), np.ones(n))
    h.changeColsIntegrality(n, np.arange(n, dtype=np.int32), np.full(n, highspy.HighsVarType.kInteger))
    for row in rows:
        idx = np.array([i for i, _ in entries[row]], dtype=np.int32)
        val = np.array([v for _, v in entries[row]], dtype=float)
        if row < J:
            h.addRow(-inf, 1.0, len(idx), idx, val)
        else:
            c, rest = divmod(row - J, T * 3)
            t, r = divmod(rest, 3)
            h.addRow(-inf, float(free[c, t, r] / scale[c, r]), len(idx), idx, val)
    deadline = began + time_limit_s
    # Level 1: the most weight placed (maximise sum w x).
    h.changeObjectiveSense(highspy.ObjSense.kMaximize)
    h.changeColsCost(n, np.arange(n, dtype=np.int32), np.array([float(weights[col[0]]) for col in cols]))
    h.setOptionValue("mip_abs_gap", 0.99)
    start: np.ndarray | None = None
    if min_weight is None:
        _run(h, began + time_limit_s / 2)
        info = h.getInfo()
        if info.primal_solution_status != 2:
            return ExactResult(n, None, None, None, None, time.monotonic() - began, False)
        best_weight = int(round(info.objective_function_value))
        weight_bound: int | None = int(math.floor(info.mip_dual_bound + 1e-6))
        level1 = h.getModelStatus() == highspy.HighsModelStatus.kOptimal
        start = np.asarray(h.getSolution().col_value)
    else:
        best_weight, weight_bound, level1 = min_weight, None, True
    # Level 2: at least that weight, least cost.
    h.addRow(
        best_weight - 1e-6,
        inf,
        n,
        np.arange(n, dtype=np.int32),
        np.array([float(weights[c[0]]) for c in cols]),
    )
    h.changeObjectiveSense(highspy.ObjSense.kMinimize)
    h.changeColsCost(n, np.arange(n, dtype=np.int32), np.array([col[4] for col in cols]))
    h.setOptionValue("mip_abs_gap", 1e-6)
    h.setOptionValue("mip_rel_gap", 1e-4)
    if start is None and start_plan:
        # A given plan (job -> (cluster index, start slot)) as level 2's first incumbent.
        start = np.array([1.0 if start_plan.get(j) == (c, s) else 0.0 for j, c, s, _, _ in cols])
    if start is not None:
        h.setSolution(n, np.arange(n, dtype=np.int32), start)
    _run(h, deadline)
    info = h.getInfo()
    cost = float(info.objective_function_value) if info.primal_solution_status == 2 else None
    bound = float(info.mip_dual_bound) if abs(info.mip_dual_bound) < 1e300 else None
    level2 = h.getModelStatus() == highspy.HighsModelStatus.kOptimal
    return ExactResult(n, best_weight, weight_bound, cost, bound, time.monotonic() - began, level1 and level2)
