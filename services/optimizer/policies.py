"""Baselines and peers, each a function of the compiled problem returning a plan.

- round_robin / least_loaded (carbon-agnostic): every job at its earliest start slot where some allowed
  cluster has room; the cluster is the next in turn, or the least loaded one (largest used share of any
  resource over the run; equally loaded clusters are told apart by a stable hash of the job id,
  services/common/stable.py, not by name).
- greedy_carbon (spatial shifting only): earliest start as above, on the cluster with the lowest intensity
  in that slot.
- temporal_only ("Let's Wait Awhile"): the job stays on its home cluster and starts in the lowest-carbon
  window before its deadline; only when the home cluster has no room in the window does it fall back to
  the next allowed cluster, again in its best window there.
- ibm_caspian: IBM's published CASPIAN (MASCOTS 2024), re-implemented from its description (policies_ibm.py).
- naive_milp: a plain time-indexed MILP, one binary per (job, cluster, start slot), with no reductions.

Jobs are taken in order of earliest start, then request order. None of these imports PuLP except the naive
MILP, which imports it when called.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from services.common.stable import stable_index
from services.optimizer.compiled import RESOURCES, Compiled
from services.optimizer.plan import Ledger, Plan, capacity_free_bound
from services.optimizer.solvers import MipResult, Outcome, check_time, remaining, solve_mip


def arrival_order(cp: Compiled, deadline: float) -> Iterator[int]:
    """Placeable jobs by earliest start, then request order; raises OutOfTime as the deadline passes."""
    jobs = np.nonzero(cp.job_class >= 0)[0]
    ordered = jobs[np.argsort(cp.earliest[jobs], kind="stable")]
    for i, j in enumerate(ordered):
        if i % 64 == 0:
            check_time(deadline)
        yield int(j)


def _earliest_fit(cp: Compiled, ledger: Ledger, j: int) -> tuple[int, np.ndarray] | None:
    """(earliest start slot with room on some allowed cluster, [C] clusters with room then)."""
    window = (cp.earliest[j], cp.latest[j])
    fits = ledger.fits(cp.req[j], int(cp.duration[j]), *window) & np.isfinite(cp.cost[cp.job_class[j]])
    slots = fits.any(axis=0)
    if not slots.any():
        return None
    s = int(np.argmax(slots))
    return s, fits[:, s]


def _take(cp: Compiled, ledger: Ledger, plan: Plan, j: int, c: int, s: int) -> None:
    ledger.take(c, s, int(cp.duration[j]), cp.req[j])
    plan.place(j, c, s)


def round_robin(cp: Compiled, deadline: float) -> Plan:
    plan, ledger = Plan.empty(cp.n), Ledger(cp.free)
    turn = 0
    for j in arrival_order(cp, deadline):
        found = _earliest_fit(cp, ledger, j)
        if found is None:
            continue
        s, room = found
        order = (turn + np.arange(cp.clusters)) % cp.clusters
        c = int(order[np.argmax(room[order])])
        _take(cp, ledger, plan, j, c, s)
        turn = (c + 1) % cp.clusters
    return plan


def least_loaded(cp: Compiled, deadline: float) -> Plan:
    plan, ledger = Plan.empty(cp.n), Ledger(cp.free)
    for j in arrival_order(cp, deadline):
        found = _earliest_fit(cp, ledger, j)
        if found is None:
            continue
        s, room = found
        load = np.where(room, ledger.load(cp.capacity, s, int(cp.duration[j])), np.inf)
        ties = np.flatnonzero(load <= load.min() + 1e-12)
        c = int(ties[stable_index(cp.problem.jobs[j].id, len(ties))])
        _take(cp, ledger, plan, j, c, s)
    return plan


def greedy_carbon(cp: Compiled, deadline: float) -> Plan:
    plan, ledger = Plan.empty(cp.n), Ledger(cp.free)
    for j in arrival_order(cp, deadline):
        found = _earliest_fit(cp, ledger, j)
        if found is None:
            continue
        s, room = found
        now = np.where(room, cp.decision_intensity[:, s], np.inf)
        ties = np.nonzero(now == now.min())[0]
        cost = cp.cost[cp.job_class[j], ties, s]
        _take(cp, ledger, plan, j, int(ties[np.argmin(cost)]), s)
    return plan


def temporal_only(cp: Compiled, deadline: float) -> Plan:
    plan, ledger = Plan.empty(cp.n), Ledger(cp.free)
    for j in arrival_order(cp, deadline):
        cost = cp.cost[cp.job_class[j]]
        fits = ledger.fits(cp.req[j], int(cp.duration[j]), cp.earliest[j], cp.latest[j]) & np.isfinite(cost)
        home = int(cp.home[j])
        order = [home] + [c for c in range(cp.clusters) if c != home]
        for c in order:
            if fits[c].any():
                s = int(np.argmin(np.where(fits[c], cost[c], np.inf)))
                _take(cp, ledger, plan, j, c, s)
                break
    return plan


def naive_milp(cp: Compiled, solver: str, mip_gap: float, deadline: float) -> tuple[Plan, str, float | None]:
    """One binary per (job, cluster, start slot) in PuLP, capacity rows on every (cluster, slot, resource).

    Returns (plan, outcome, the solver's bound on the objective incl. penalties, if any).
    """
    import pulp

    plan = Plan.empty(cp.n)
    prob = pulp.LpProblem("naive", pulp.LpMinimize)
    objective = []
    rows: dict[tuple[int, int, int], list] = {}
    # The variables are PuLP's, which ships no type information.
    variables: list[tuple[int, int, int, Any]] = []
    scale = np.where(cp.capacity > 0, cp.capacity, 1.0)
    for n_built, j in enumerate(np.nonzero(cp.job_class >= 0)[0].tolist()):
        if n_built % 200 == 0 and remaining(deadline) <= 0:
            return plan, Outcome.NO_SOLUTION, None
        cost = cp.cost[cp.job_class[j]]
        d = int(cp.duration[j])
        unplaced = prob.add_variable(f"u_{j}", cat=pulp.LpBinary)
        once = [(unplaced, 1.0)]
        objective.append((unplaced, cp.penalty_unit * float(cp.weight[j])))
        for c, s in zip(*np.nonzero(np.isfinite(cost)), strict=True):
            x = prob.add_variable(f"x_{j}_{c}_{s}", cat=pulp.LpBinary)
            variables.append((j, int(c), int(s), x))
            once.append((x, 1.0))
            objective.append((x, float(cost[c, s])))
            for r in range(RESOURCES):
                need = cp.req[j, r]
                if need > 0:
                    for t in range(s, s + d):
                        rows.setdefault((int(c), t, r), []).append((x, float(need / scale[c, r])))
        prob += pulp.LpConstraint(pulp.LpAffineExpression(once), pulp.LpConstraintEQ, f"once_{j}", 1.0)
    prob += pulp.LpAffineExpression(objective)
    for (c, t, r), terms in rows.items():
        rhs = float(cp.free[c, t, r] / scale[c, r])
        prob += pulp.LpConstraint(
            pulp.LpAffineExpression(terms), pulp.LpConstraintLE, f"cap_{c}_{t}_{r}", rhs
        )
    if remaining(deadline) <= 0:
        return plan, Outcome.NO_SOLUTION, None
    result: MipResult
    result, order = solve_mip(prob, solver, deadline, mip_gap, 0.0, None)
    if result.values is None:
        return plan, result.outcome, result.bound
    value = {v.name: x for v, x in zip(order, result.values, strict=True)}
    for j, c, s, x in variables:
        if value.get(x.name, 0.0) > 0.5:
            plan.place(j, c, s)
    return plan, result.outcome, result.bound


def trivial_bound(cp: Compiled) -> float:
    return capacity_free_bound(cp)
