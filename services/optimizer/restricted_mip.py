"""The restricted MILP: the model over the options whose Lagrangian reduced cost is below the gap.

Any plan better than the incumbent uses only those options (reduced-cost fixing), so when every one of them
is in the model (`exact`), the solver's bound on it is a bound on the whole problem as well.

With HiGHS the model is the master LP's own matrix (master_lp.py, built in a few array calls) with integer
columns, so its size does not decide whether it runs: it gets the time left. With CBC it goes through PuLP
in the penalised form (objective plus a penalty per job left out); only its plan is used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from services.optimizer.compiled import Compiled
from services.optimizer.master_lp import MasterLP
from services.optimizer.plan import ClassFiller, Ledger, Plan
from services.optimizer.pricing import LagrangianPrices
from services.optimizer.repair import fill_greedily
from services.optimizer.solvers import Outcome, run_highs_mip, solve_mip

MAX_MIP_COLUMNS = 60_000


@dataclass(frozen=True)
class RestrictedMip:
    plan: Plan | None
    bound: float | None  # the solver's bound; on the whole problem only when `exact`
    exact: bool  # every option below the reduced-cost threshold was in the model
    outcome: str
    columns: int = 0


def candidate_options(
    cp: Compiled, price: np.ndarray, best: np.ndarray, threshold: float, incumbent: Plan
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """(class, cluster, start) of the options with reduced cost below `threshold`, plus the incumbent's;
    exact when none had to be dropped for size."""
    reduced = price - best[:, None, None]
    candidates = np.nonzero(reduced < threshold - 1e-9)
    exact = len(candidates[0]) <= MAX_MIP_COLUMNS
    if not exact:
        order = np.argsort(reduced[candidates], kind="stable")[:MAX_MIP_COLUMNS]
        candidates = tuple(axis[order] for axis in candidates)
    chosen = np.zeros(cp.cost.shape, dtype=bool)
    chosen[candidates] = True
    placed = incumbent.cluster >= 0
    chosen[cp.job_class[placed], incumbent.cluster[placed], incumbent.start[placed]] = True
    ks, cs, ss = np.nonzero(chosen)
    return ks, cs, ss, exact


def solve_restricted_milp(
    cp: Compiled,
    prices: LagrangianPrices,
    price: np.ndarray,
    best: np.ndarray,
    threshold: float,
    incumbent: Plan,
    left_out_cost: np.ndarray,
    min_weight: float | None,
    deadline: float,
    gap_abs: float,
    presolve: bool = False,
) -> RestrictedMip:
    """The MILP over the candidate options on HiGHS, warm-started from the incumbent. `cp`'s costs and
    `left_out_cost` make the objective (the placement level passes zero costs and the weights)."""
    ks, cs, ss, exact = candidate_options(cp, price, best, threshold, incumbent)
    model = MasterLP(cp, prices, left_out_cost, min_weight)
    model.add(ks, cs, ss)
    model.make_integer()
    h = model.h
    # Presolve pays on the placement level's degenerate model, not on the carbon level's small ones.
    h.setOptionValue("presolve", "on" if presolve else "off")
    h.setOptionValue("mip_rel_gap", 0.0)
    h.setOptionValue("mip_abs_gap", max(gap_abs, 1e-9))
    columns = model.option_columns()
    K = cp.classes
    placed = incumbent.cluster >= 0
    counts: dict[tuple[int, int, int], int] = {}
    for k, c, s in zip(cp.job_class[placed], incumbent.cluster[placed], incumbent.start[placed], strict=True):
        counts[(int(k), int(c), int(s))] = counts.get((int(k), int(c), int(s)), 0) + 1
    left = np.bincount(cp.job_class[(~placed) & (cp.job_class >= 0)], minlength=K).astype(float)
    option_values = np.array([counts.get((int(k), int(c), int(s)), 0) for k, c, s in columns], dtype=float)
    start = np.concatenate([left, option_values])
    h.setSolution(len(start), np.arange(len(start), dtype=np.int32), start)
    result = run_highs_mip(h, deadline)
    if result.values is None:
        return RestrictedMip(None, None, exact, result.outcome, len(columns))
    values = np.asarray(result.values)[K:]
    plan = Plan.empty(cp.n)
    ledger = Ledger(cp.free)
    filler = ClassFiller(cp, plan)
    rep = cp.class_job
    for i in np.nonzero(values > 0.5)[0]:
        k, c, s = (int(v) for v in columns[i])
        d, req = int(cp.duration[rep[k]]), cp.req[rep[k]]
        count = min(int(round(values[i])), filler.remaining(k), ledger.copies(c, s, d, req))
        if count > 0:
            ledger.take(c, s, d, req, count)
            filler.place(k, c, s, count)
    fill_greedily(cp, ledger, filler, price)
    bound = result.bound if result.outcome in (Outcome.OPTIMAL, Outcome.FEASIBLE) else None
    if result.outcome == Outcome.OPTIMAL and bound is None:
        bound = result.objective
    return RestrictedMip(plan, bound, exact, result.outcome, len(columns))


def solve_restricted_mip_pulp(
    cp: Compiled,
    lp: MasterLP,
    price: np.ndarray,
    best: np.ndarray,
    incumbent: Plan,
    upper: float,
    lower: float,
    solver: str,
    deadline: float,
    target_abs: float,
) -> RestrictedMip:
    """Solve the MILP over the options whose reduced cost is below the gap (and the incumbent's)."""
    import pulp

    K = cp.classes
    reduced = price - best[:, None, None]
    threshold = upper - lower
    candidates = np.nonzero(reduced < threshold - 1e-9)
    in_incumbent = np.zeros_like(cp.cost, dtype=bool)
    placed = incumbent.cluster >= 0
    in_incumbent[cp.job_class[placed], incumbent.cluster[placed], incumbent.start[placed]] = True
    exact = len(candidates[0]) <= MAX_MIP_COLUMNS
    if not exact:
        order = np.argsort(reduced[candidates], kind="stable")[:MAX_MIP_COLUMNS]
        candidates = tuple(axis[order] for axis in candidates)
    chosen = np.zeros_like(in_incumbent)
    chosen[candidates] = True
    chosen |= in_incumbent
    ks, cs, ss = np.nonzero(chosen)

    prob = pulp.LpProblem("caspian", pulp.LpMinimize)
    y = [prob.add_variable(f"y{i}", 0, int(cp.count[k]), cat=pulp.LpInteger) for i, k in enumerate(ks)]
    u = [prob.add_variable(f"u{k}", 0, int(cp.count[k]), cat=pulp.LpInteger) for k in range(K)]
    objective = [(y[i], float(cp.cost[k, c, s])) for i, (k, c, s) in enumerate(zip(ks, cs, ss, strict=True))]
    objective += [(u[k], float(lp.prices.penalty[k])) for k in range(K)]
    prob += pulp.LpAffineExpression(objective)
    per_class: list[list] = [[(u[k], 1.0)] for k in range(K)]
    rows: dict[tuple[int, int, int], list] = {}
    rep = cp.class_job
    for i, (k, c, s) in enumerate(zip(ks, cs, ss, strict=True)):
        per_class[k].append((y[i], 1.0))
        d = int(cp.duration[rep[k]])
        for r in range(lp.prices.req.shape[1]):
            need = float(lp.prices.req[k, r])
            if need <= 0:
                continue
            for t in range(s, s + d):
                if lp.rowmap[c, t, r] >= 0:
                    rows.setdefault((int(c), t, r), []).append((y[i], need / lp.scale[c, r]))
    for kc in range(K):
        prob += pulp.LpConstraint(
            pulp.LpAffineExpression(per_class[kc]), pulp.LpConstraintEQ, f"n{kc}", float(cp.count[kc])
        )
    for (cr, t, r), terms in rows.items():
        rhs = float(lp.prices.free[cr, t, r] / lp.scale[cr, r])
        prob += pulp.LpConstraint(
            pulp.LpAffineExpression(terms), pulp.LpConstraintLE, f"cap_{cr}_{t}_{r}", rhs
        )

    counts: dict[tuple[int, int, int], int] = {}
    for j in np.nonzero(placed)[0].tolist():
        key = (int(cp.job_class[j]), int(incumbent.cluster[j]), int(incumbent.start[j]))
        counts[key] = counts.get(key, 0) + 1
    warm: dict = {}
    for i, (k, c, s) in enumerate(zip(ks, cs, ss, strict=True)):
        warm[y[i]] = float(counts.get((int(k), int(c), int(s)), 0))
    left = np.bincount(cp.job_class[(~placed) & (cp.job_class >= 0)], minlength=K)
    for kk in range(K):
        warm[u[kk]] = float(left[kk])

    result, variables = solve_mip(prob, solver, deadline, 0.0, max(target_abs, 1e-9), warm)
    if result.values is None:
        return RestrictedMip(None, None, exact, result.outcome)
    value_of = {v.name: x for v, x in zip(variables, result.values, strict=True)}
    plan = Plan.empty(cp.n)
    ledger = Ledger(cp.free)
    filler = ClassFiller(cp, plan)
    for i, (k, c, s) in enumerate(zip(ks, cs, ss, strict=True)):
        count = int(round(value_of.get(y[i].name, 0.0)))
        if count <= 0:
            continue
        d = int(cp.duration[rep[k]])
        req = cp.req[rep[k]]
        count = min(count, filler.remaining(int(k)), ledger.copies(int(c), int(s), d, req))
        ledger.take(int(c), int(s), d, req, count)
        filler.place(int(k), int(c), int(s), count)
    fill_greedily(cp, ledger, filler, price)
    bound = result.bound if result.outcome in (Outcome.OPTIMAL, Outcome.FEASIBLE) else None
    if result.outcome == Outcome.OPTIMAL and bound is None:
        bound = result.objective
    return RestrictedMip(plan, bound, exact, result.outcome)
