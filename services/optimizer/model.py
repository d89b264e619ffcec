"""CASPIAN's spatio-temporal MILP, solved fast with a bound that is true.

Model (see compiled.py for the option costs). For each class k of n_k identical jobs and each allowed option
o = (cluster c, start slot s) in the job's window, an integer y[k,o] counts the jobs of k started at o, and
u[k] counts the jobs left out:

    minimise   sum cost[k,o] y[k,o] + sum P w_k u[k]
    subject to sum_o y[k,o] + u[k] = n_k                                   (every job decided once)
               sum_{k,o covering slot t on c} req[k,r] y[k,o] <= free[c,t,r]   (capacity, per resource)

P exceeds any difference in plan cost, so the plan first places as many (priority-weighted) jobs as
possible, then minimises carbon. Speed-ups, none of which changes the optimum:

1. Identical jobs are one class with an integer count.
2. Options that cannot fit beside the reservations, capacity rows no set of options can overfill, and rows
   implied by another resource's row on the same cell are dropped.
3. The bound is a Lagrangian bound computed here, not taken from any solver: for any multipliers lam >= 0
   on the capacity rows,
       L(lam) = sum_k n_k min(P w_k, min_o (cost[k,o] + lam . A[k,o])) - lam . free
   is below the optimum of the MILP (weak duality). It is evaluated over every option of every class.
4. lam comes from the LP relaxation, solved by column generation on HiGHS (options with a negative reduced
   cost are added until none is left; then L(lam) is the LP optimum). Above SAMPLE_ABOVE_CLASSES classes,
   lam first comes from the LP of a random sample of the classes given the same share of capacity: with
   many jobs the prices of a proportional sample are close to those of the whole.
5. The LP solution is rounded down, the rest placed greedily by Lagrangian price, left-out jobs get room
   by moving a blocking job, and single jobs move to cheaper options with room.
6. Up to MAX_MIP_JOBS jobs, if the gap is still above the target, a MILP (PuLP; HiGHS or CBC) is solved over
   the options whose Lagrangian reduced cost is below the gap: any better plan uses only those
   (reduced-cost fixing), so the solver's bound on it is a bound on the whole problem as well.

The solve stops once the plan is within the requested gap of the bound, or at the deadline.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass

import highspy
import numpy as np

from services.optimizer.compiled import RESOURCES, Compiled
from services.optimizer.plan import ClassFiller, Ledger, Plan
from services.optimizer.solvers import (
    Outcome,
    OutOfTime,
    check_time,
    highs_lp_outcome,
    remaining,
    run_highs,
    solve_mip,
)

log = logging.getLogger("caspian.optimizer.model")

INITIAL_OPTIONS_PER_CLASS = 3
COLUMNS_PER_CLASS_PER_ROUND = 3
MAX_ROUNDS = 200
MAX_MIP_COLUMNS = 60_000
# Above this many jobs the restricted MILP rarely pays for its model-building time.
MAX_MIP_JOBS = 1_000
# Above this many classes, capacity prices come first from the LP of a sample of the classes.
SAMPLE_ABOVE_CLASSES = 600
SAMPLE_MIN_CLASSES = 200
SAMPLE_SHARE = 0.1
SAMPLE_INITIAL_OPTIONS = 6
SAMPLE_COLUMNS_PER_ROUND = 6
SAMPLE_SEED = 20240901
# With sample prices to rank them, each class's few best options are enough for the first master.
SAMPLED_INITIAL_OPTIONS = 4
# Each class's cheapest option on every cluster joins the first master while the count stays modest.
PER_CLUSTER_COLUMNS_UP_TO = 15_000
REDUCED_COST_TOL = 1e-9


@dataclass
class ModelOutcome:
    plan: Plan
    objective: float  # incl. penalties of placeable jobs left out
    bound: float  # true lower bound on the same objective
    proven: bool  # gap within the target
    timed_out: bool
    stats: dict


class _Prices:
    """Lagrangian prices of every option for capacity multipliers lam >= 0."""

    def __init__(self, cp: Compiled):
        self.cp = cp
        rep = cp.class_job
        self.req = cp.req[rep]  # [K, R]
        self.duration = cp.duration[rep]
        self.groups = [(int(d), np.nonzero(self.duration == d)[0]) for d in np.unique(self.duration)]
        self.penalty = cp.penalty_unit * cp.weight[rep].astype(float)

    def price(self, lam: np.ndarray) -> np.ndarray:
        """[K, C, T]: cost + lam summed over the slots and resources each option uses."""
        cp = self.cp
        price = cp.cost.copy()
        active = [r for r in range(RESOURCES) if lam[:, :, r].any()]
        if not active:
            return price
        T = cp.slots
        prefix = np.concatenate([np.zeros((cp.clusters, 1, RESOURCES)), np.cumsum(lam, axis=1)], axis=1)
        for d, group in self.groups:
            S = T - d + 1
            window = prefix[:, d : d + S, :] - prefix[:, :S, :]  # [C, S, R]
            extra = np.einsum("gr,csr->gcs", self.req[group][:, active], window[:, :, active])
            price[group, :, :S] += extra
        return price

    def bound(self, lam: np.ndarray, price: np.ndarray) -> tuple[float, np.ndarray]:
        """L(lam) and each class's best price (capped by its penalty)."""
        K = len(self.penalty)
        best = np.minimum(price.reshape(K, -1).min(axis=1), self.penalty)
        return float((best * self.cp.count).sum() - (lam * self.cp.free).sum()), best


class _MasterLP:
    """The restricted master LP on HiGHS; columns are added as pricing finds them."""

    def __init__(self, cp: Compiled, prices: _Prices):
        self.cp = cp
        self.prices = prices
        K, C, T = cp.classes, cp.clusters, cp.slots
        self.rowmap, self.scale = self._capacity_rows()
        self.cap_rows = int((self.rowmap >= 0).sum())
        self.h = highspy.Highs()
        self.h.silent()
        self.h.setOptionValue("presolve", "off")
        inf = highspy.kHighsInf
        count = cp.count.astype(float)
        free_rows = np.zeros(self.cap_rows)
        where = np.nonzero(self.rowmap >= 0)
        free_rows[self.rowmap[where] - K] = cp.free[where] / self.scale[where[0], where[2]]
        lower = np.concatenate([count, np.full(self.cap_rows, -inf)])
        upper = np.concatenate([count, free_rows])
        self.h.addRows(
            K + self.cap_rows, lower, upper, 0, np.zeros(1, np.int32), np.zeros(0, np.int32), np.zeros(0)
        )
        # u[k]: jobs of class k left out
        self.h.addCols(
            K,
            prices.penalty,
            np.zeros(K),
            count,
            K,
            np.arange(K, dtype=np.int32),
            np.arange(K, dtype=np.int32),
            np.ones(K),
        )
        self.columns: list[np.ndarray] = []  # (k, c, s) of option columns in LP order
        self.in_lp = np.zeros((K, C, T), dtype=bool)

    def _capacity_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Rows some combination of options could overfill; the rest can never bind."""
        cp = self.cp
        K, C, T = cp.classes, cp.clusters, cp.slots
        demand = np.zeros((C, T, RESOURCES))
        valid = np.isfinite(cp.cost)
        for d, group in self.prices.groups:
            starts = np.concatenate([np.zeros((len(group), C, 1)), np.cumsum(valid[group], axis=2)], axis=2)
            t = np.arange(T)
            covered = starts[:, :, t + 1] - starts[:, :, np.maximum(0, t - d + 1)] > 0  # [G, C, T]
            weight = self.prices.req[group] * cp.count[group, None]
            demand += np.einsum("gct,gr->ctr", covered.astype(float), weight)
        binding = demand > cp.free + 1e-9
        # A row is implied by another resource's row on the same (cluster, slot) when every job needs at most
        # free[r2]/free[r1] of r2 per unit of r1: then sum req[r2] y <= ratio sum req[r1] y <= free[r2].
        req = self.prices.req
        for r2 in range(RESOURCES):
            for r1 in range(RESOURCES):
                if r1 == r2:
                    continue
                users = req[:, r2] > 0
                if not users.any():
                    continue
                if (req[users, r1] <= 0).any():
                    continue
                ratio = float((req[users, r2] / req[users, r1]).max())
                implied = binding[:, :, r1] & (ratio * cp.free[:, :, r1] <= cp.free[:, :, r2] * (1 + 1e-12))
                binding[:, :, r2] &= ~implied
        rowmap = np.full((C, T, RESOURCES), -1, dtype=np.int64)
        rowmap[binding] = np.arange(int(binding.sum())) + K
        scale = np.where(cp.capacity > 0, cp.capacity, 1.0)
        return rowmap, scale

    def add(self, ks: np.ndarray, cs: np.ndarray, ss: np.ndarray) -> int:
        if len(ks) == 0:
            return 0
        cp, prices = self.cp, self.prices
        keep = ~self.in_lp[ks, cs, ss]
        ks, cs, ss = ks[keep], cs[keep], ss[keep]
        if len(ks) == 0:
            return 0
        self.in_lp[ks, cs, ss] = True
        d = prices.duration[ks]
        D = int(d.max())
        tt = np.arange(D)
        slots = ss[:, None] + tt[None, :]
        in_run = tt[None, :] < d[:, None]
        slots = np.minimum(slots, cp.slots - 1)
        rows = [ks[:, None].astype(np.int64)]
        vals = [np.ones((len(ks), 1))]
        for r in range(RESOURCES):
            need = prices.req[ks, r]
            if not (need > 0).any():
                continue
            row = self.rowmap[cs[:, None], slots, r]
            ok = in_run & (row >= 0) & (need[:, None] > 0)
            rows.append(np.where(ok, row, -1))
            vals.append(np.where(ok, need[:, None] / self.scale[cs, r][:, None], 0.0))
        rows_all = np.concatenate(rows, axis=1)
        vals_all = np.concatenate(vals, axis=1)
        mask = rows_all >= 0
        counts = mask.sum(axis=1)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int32)
        index = rows_all[mask].astype(np.int32)
        value = vals_all[mask]
        cost = cp.cost[ks, cs, ss]
        upper = cp.count[ks].astype(float)
        self.h.addCols(len(ks), cost, np.zeros(len(ks)), upper, len(index), starts, index, value)
        self.columns.append(np.stack([ks, cs, ss], axis=1))
        return len(ks)

    def option_columns(self) -> np.ndarray:
        return np.concatenate(self.columns) if self.columns else np.zeros((0, 3), dtype=np.int64)

    def solve(self, deadline: float) -> str:
        return highs_lp_outcome(self.h, run_highs(self.h, deadline))

    def duals(self) -> tuple[np.ndarray, np.ndarray]:
        """(class duals sigma [K], capacity multipliers lam [C, T, R] per unit of resource, >= 0)."""
        cp = self.cp
        row_dual = np.asarray(self.h.getSolution().row_dual)
        sigma = row_dual[: cp.classes]
        lam = np.zeros((cp.clusters, cp.slots, RESOURCES))
        where = np.nonzero(self.rowmap >= 0)
        lam[where] = np.maximum(0.0, -row_dual[self.rowmap[where]]) / self.scale[where[0], where[2]]
        return sigma, lam

    def primal(self) -> tuple[np.ndarray, np.ndarray]:
        """(u [K], y per option column)."""
        values = np.asarray(self.h.getSolution().col_value)
        K = self.cp.classes
        return values[:K], values[K:]

    @property
    def objective(self) -> float:
        return float(self.h.getInfo().objective_function_value)


def _cheapest(cost: np.ndarray, per_class: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    K, C, T = cost.shape
    flat = cost.reshape(K, -1)
    m = min(per_class, flat.shape[1])
    pick = np.argpartition(flat, m - 1, axis=1)[:, :m]
    ks = np.repeat(np.arange(K), m)
    opts = pick.reshape(-1)
    finite = np.isfinite(flat[ks, opts])
    ks, opts = ks[finite], opts[finite]
    return ks, opts // T, opts % T


def _improving(price: np.ndarray, sigma: np.ndarray, in_lp: np.ndarray, per_class: int):
    K, C, T = price.shape
    reduced = price.reshape(K, -1) - sigma[:, None]
    reduced = np.where(in_lp.reshape(K, -1), np.inf, reduced)
    tol = REDUCED_COST_TOL * np.maximum(1.0, np.abs(sigma))[:, None]
    m = min(per_class, reduced.shape[1])
    pick = np.argpartition(reduced, m - 1, axis=1)[:, :m]
    ks = np.repeat(np.arange(K), m)
    opts = pick.reshape(-1)
    good = reduced[ks, opts] < -tol[ks, 0]
    ks, opts = ks[good], opts[good]
    return ks, opts // T, opts % T


def fill_greedily(
    cp: Compiled, ledger: Ledger, filler: ClassFiller, price: np.ndarray, deadline: float | None = None
) -> None:
    """Place every job still unplaced at its lowest-price option that fits: jobs with the fewest options
    first (they are the easiest to squeeze out), larger jobs first among equals. Raises OutOfTime once
    `deadline` passes."""
    rep = cp.class_job
    size = (cp.req[rep] / np.maximum(cp.capacity.max(axis=0), 1.0)).sum(axis=1) * cp.duration[rep]
    options = np.isfinite(cp.cost).reshape(cp.classes, -1).sum(axis=1)
    for k in np.lexsort((-size, options)):
        k = int(k)
        if filler.remaining(k) <= 0:
            continue
        if deadline is not None:
            check_time(deadline)
        d = int(cp.duration[rep[k]])
        req = cp.req[rep[k]]
        while filler.remaining(k) > 0:
            fits = ledger.fits(req, d, cp.earliest[rep[k]], cp.latest[rep[k]]) & np.isfinite(cp.cost[k])
            if not fits.any():
                break
            c, s = np.unravel_index(np.argmin(np.where(fits, price[k], np.inf)), fits.shape)
            c, s = int(c), int(s)
            count = min(filler.remaining(k), max(1, ledger.copies(c, s, d, req)))
            ledger.take(c, s, d, req, count)
            filler.place(k, c, s, count)


def place_left_out(cp: Compiled, plan: Plan, price: np.ndarray, deadline: float, tries: int = 24) -> int:
    """Make room for jobs left out: move one job that blocks a good option of the left-out job to its
    own best other option, if that frees enough room. Returns how many jobs were placed."""
    ledger = Ledger(cp.free)
    for j in np.nonzero(plan.cluster >= 0)[0]:
        ledger.take(int(plan.cluster[j]), int(plan.start[j]), int(cp.duration[j]), cp.req[j])
    left = np.nonzero((plan.cluster < 0) & (cp.job_class >= 0))[0]
    done = 0
    for j in left:
        if remaining(deadline) <= 0:
            break
        j = int(j)
        k, d, req = int(cp.job_class[j]), int(cp.duration[j]), cp.req[j]
        fits = ledger.fits(req, d, cp.earliest[j], cp.latest[j]) & np.isfinite(cp.cost[k])
        if fits.any():
            c, s = np.unravel_index(np.argmin(np.where(fits, price[k], np.inf)), fits.shape)
            ledger.take(int(c), int(s), d, req)
            plan.place(j, int(c), int(s))
            done += 1
            continue
        flat = np.where(np.isfinite(cp.cost[k]), price[k], np.inf).reshape(-1)
        order = np.argsort(flat, kind="stable")[:tries]
        placed = False
        for option in order:
            if not np.isfinite(flat[option]) or placed:
                break
            c, s = divmod(int(option), cp.slots)
            on_c = np.nonzero(plan.cluster == c)[0]
            ends = plan.start[on_c] + cp.duration[on_c]
            blockers = on_c[(plan.start[on_c] < s + d) & (ends > s)]
            for b in blockers:
                b = int(b)
                cb, sb, db, rb = int(plan.cluster[b]), int(plan.start[b]), int(cp.duration[b]), cp.req[b]
                ledger.take(cb, sb, db, rb, -1)
                if ledger.copies(c, s, d, req) >= 1:
                    ledger.take(c, s, d, req)
                    kb = int(cp.job_class[b])
                    room = ledger.fits(rb, db, cp.earliest[b], cp.latest[b]) & np.isfinite(cp.cost[kb])
                    if room.any():
                        c2, s2 = np.unravel_index(np.argmin(np.where(room, price[kb], np.inf)), room.shape)
                        ledger.take(int(c2), int(s2), db, rb)
                        plan.place(b, int(c2), int(s2))
                        plan.place(j, c, s)
                        placed = True
                        done += 1
                        break
                    ledger.take(c, s, d, req, -1)
                ledger.take(cb, sb, db, rb)
    return done


def _round(cp: Compiled, lp: _MasterLP, price: np.ndarray, deadline: float | None = None) -> Plan:
    plan = Plan.empty(cp.n)
    ledger = Ledger(cp.free)
    filler = ClassFiller(cp, plan)
    _, y = lp.primal()
    columns = lp.option_columns()
    whole = np.floor(y + 1e-6).astype(np.int64)
    for i in np.nonzero(whole > 0)[0]:
        k, c, s = (int(v) for v in columns[i])
        d = int(cp.duration[cp.class_job[k]])
        req = cp.req[cp.class_job[k]]
        count = min(int(whole[i]), filler.remaining(k), ledger.copies(c, s, d, req))
        if count > 0:
            ledger.take(c, s, d, req, count)
            filler.place(k, c, s, count)
    fill_greedily(cp, ledger, filler, price, deadline)
    return plan


def _try_round(cp: Compiled, lp: _MasterLP, price: np.ndarray, deadline: float) -> Plan | None:
    try:
        return _round(cp, lp, price, deadline)
    except OutOfTime:
        return None


def _objective(cp: Compiled, plan: Plan) -> float:
    placed = plan.cluster >= 0
    k = cp.job_class
    cost = cp.cost[k[placed], plan.cluster[placed], plan.start[placed]].sum()
    left = (~placed) & (k >= 0)
    return float(cost + cp.penalty_unit * cp.weight[left].sum())


def _restricted_mip(
    cp: Compiled,
    lp: _MasterLP,
    price: np.ndarray,
    best: np.ndarray,
    incumbent: Plan,
    upper: float,
    lower: float,
    solver: str,
    deadline: float,
    target_abs: float,
) -> tuple[Plan | None, float | None, bool, str]:
    """Solve the MILP over options with reduced cost below the gap. Returns (plan, bound, exact, outcome)."""
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
        for r in range(RESOURCES):
            need = float(cp.req[rep[k], r])
            if need <= 0:
                continue
            for t in range(s, s + d):
                if lp.rowmap[c, t, r] >= 0:
                    rows.setdefault((int(c), t, r), []).append((y[i], need / lp.scale[c, r]))
    for k in range(K):
        prob += pulp.LpConstraint(
            pulp.LpAffineExpression(per_class[k]), pulp.LpConstraintEQ, f"n{k}", float(cp.count[k])
        )
    for (c, t, r), terms in rows.items():
        rhs = float(cp.free[c, t, r] / lp.scale[c, r])
        prob += pulp.LpConstraint(
            pulp.LpAffineExpression(terms), pulp.LpConstraintLE, f"cap_{c}_{t}_{r}", rhs
        )

    counts: dict[tuple[int, int, int], int] = {}
    for j in np.nonzero(placed)[0]:
        key = (int(cp.job_class[j]), int(incumbent.cluster[j]), int(incumbent.start[j]))
        counts[key] = counts.get(key, 0) + 1
    warm: dict = {}
    for i, (k, c, s) in enumerate(zip(ks, cs, ss, strict=True)):
        warm[y[i]] = float(counts.get((int(k), int(c), int(s)), 0))
    left = np.bincount(cp.job_class[(~placed) & (cp.job_class >= 0)], minlength=K)
    for k in range(K):
        warm[u[k]] = float(left[k])

    result, variables = solve_mip(prob, solver, deadline, 0.0, max(target_abs, 1e-9), warm)
    if result.values is None:
        return None, None, exact, result.outcome
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
    return plan, bound, exact, result.outcome


def improve_moves(cp: Compiled, plan: Plan, deadline: float, max_passes: int = 4) -> int:
    """Move single jobs to cheaper options that have room (and place left-out ones that now fit)."""
    ledger = Ledger(cp.free)
    placed = np.nonzero(plan.cluster >= 0)[0]
    for j in placed:
        ledger.take(int(plan.cluster[j]), int(plan.start[j]), int(cp.duration[j]), cp.req[j])
    best = cp.cost.reshape(cp.classes, -1).min(axis=1)
    moves = 0
    for _ in range(max_passes):
        k_of = cp.job_class
        current = np.full(cp.n, np.inf)
        on = plan.cluster >= 0
        current[on] = cp.cost[k_of[on], plan.cluster[on], plan.start[on]]
        candidates = np.nonzero((k_of >= 0) & (current > best[np.maximum(k_of, 0)] + 1e-12))[0]
        candidates = candidates[np.argsort(-(current[candidates] - best[k_of[candidates]]), kind="stable")]
        moved = 0
        for j in candidates:
            if remaining(deadline) <= 0:
                return moves
            j = int(j)
            k, d, req = int(k_of[j]), int(cp.duration[j]), cp.req[j]
            if plan.cluster[j] >= 0:
                ledger.take(int(plan.cluster[j]), int(plan.start[j]), d, req, -1)
            fits = ledger.fits(req, d, cp.earliest[j], cp.latest[j]) & np.isfinite(cp.cost[k])
            option = np.where(fits, cp.cost[k], np.inf)
            c, s = np.unravel_index(np.argmin(option), option.shape)
            if option[c, s] < current[j] - 1e-12:
                plan.place(j, int(c), int(s))
                moved += 1
            if plan.cluster[j] >= 0:
                ledger.take(int(plan.cluster[j]), int(plan.start[j]), d, req)
        moves += moved
        if moved == 0:
            break
    return moves


def _sample_prices(cp: Compiled, prices: _Prices, deadline: float, stats: dict) -> np.ndarray | None:
    """Capacity prices from the LP of a random sample of the classes with the same share of capacity.

    With many jobs the prices of a proportional sample are close to those of the whole (each cell's
    price depends on aggregate demand); they are only a guide: the bound they give is evaluated on the
    whole problem, L(lam) is valid for any lam >= 0."""
    K = cp.classes
    size = min(K, max(SAMPLE_MIN_CLASSES, int(SAMPLE_SHARE * K)))
    rng = np.random.default_rng(SAMPLE_SEED)
    pick = np.sort(rng.choice(K, size, replace=False))
    rep = cp.class_job
    work = (cp.req[rep] / np.maximum(cp.capacity.max(axis=0), 1.0)).sum(axis=1) * cp.duration[rep] * cp.count
    share = float(work[pick].sum() / max(work.sum(), 1e-12))
    sample = dataclasses.replace(
        cp, cost=cp.cost[pick], class_job=rep[pick], count=cp.count[pick], free=cp.free * share
    )
    sample_prices = _Prices(sample)
    lp = _MasterLP(sample, sample_prices)
    lp.add(*_cheapest(sample.cost, SAMPLE_INITIAL_OPTIONS))
    per_cluster = np.argmin(sample.cost, axis=2)
    ks, cs = np.nonzero(np.isfinite(sample.cost.min(axis=2)))
    lp.add(ks, cs, per_cluster[ks, cs])
    lam = None
    rounds = 0
    while rounds < MAX_ROUNDS:
        rounds += 1
        if lp.solve(deadline) != Outcome.OPTIMAL:
            break
        sigma, lam = lp.duals()
        if not lp.add(*_improving(sample_prices.price(lam), sigma, lp.in_lp, SAMPLE_COLUMNS_PER_ROUND)):
            break
    stats.update(sample_classes=size, sample_rounds=rounds)
    return lam


def solve_caspian(
    cp: Compiled, solver: str, mip_gap: float, deadline: float, budget_s: float
) -> ModelOutcome:
    """Column generation for the bound and the guide, rounding and local moves for the plan, then a
    restricted MILP if the gap is still above `mip_gap` and the problem is small. `budget_s` is the
    whole solve's time limit; every phase stops at its share of it."""
    started = time.monotonic()
    stats: dict = {"classes": cp.classes, "jobs": cp.n}
    if cp.classes == 0:
        return ModelOutcome(Plan.empty(cp.n), 0.0, 0.0, True, False, stats)
    check_time(deadline)
    sample_deadline = min(deadline, started + 0.4 * budget_s)
    lp_deadline = min(deadline, started + 0.75 * budget_s)

    # A plan first, so that any later phase may run out of time.
    incumbent = Plan.empty(cp.n)
    fill_greedily(cp, Ledger(cp.free), ClassFiller(cp, incumbent), cp.cost, deadline)
    upper = _objective(cp, incumbent)
    stats["greedy_objective"] = upper

    prices = _Prices(cp)
    zero = np.zeros((cp.clusters, cp.slots, RESOURCES))
    lower, best = prices.bound(zero, cp.cost)
    best_price = guide = cp.cost
    if cp.classes > SAMPLE_ABOVE_CLASSES:
        lam = _sample_prices(cp, prices, sample_deadline, stats)
        if lam is not None:
            guide = prices.price(lam)
            bound, class_best = prices.bound(lam, guide)
            if bound > lower:
                lower, best, best_price = bound, class_best, guide
    stats["sample_seconds"] = round(time.monotonic() - started, 3)

    if guide is not cp.cost:
        priced = Plan.empty(cp.n)
        try:
            fill_greedily(cp, Ledger(cp.free), ClassFiller(cp, priced), guide, deadline)
            value = _objective(cp, priced)
            if value < upper:
                incumbent, upper = priced, value
        except OutOfTime:
            pass

    lp = _MasterLP(cp, prices)
    stats["capacity_rows"] = lp.cap_rows
    placed = incumbent.cluster >= 0
    lp.add(cp.job_class[placed], incumbent.cluster[placed], incumbent.start[placed])
    sampled = guide is not cp.cost
    lp.add(*_cheapest(guide, SAMPLED_INITIAL_OPTIONS if sampled else INITIAL_OPTIONS_PER_CLASS))
    if not sampled and cp.classes * cp.clusters <= PER_CLUSTER_COLUMNS_UP_TO:
        per_cluster = np.argmin(guide, axis=2)
        ks, cs = np.nonzero(np.isfinite(guide.min(axis=2)))
        lp.add(ks, cs, per_cluster[ks, cs])

    def target() -> float:
        return mip_gap * max(upper - _penalty(cp, incumbent), 1e-9)

    rounds = solved = 0
    converged = False
    rounded = False
    history: list[tuple] = []
    while rounds < MAX_ROUNDS and remaining(lp_deadline) > 0 and upper - lower > target():
        rounds += 1
        if lp.solve(lp_deadline) != Outcome.OPTIMAL:
            break
        solved += 1
        sigma, lam = lp.duals()
        price = prices.price(lam)
        bound, class_best = prices.bound(lam, price)
        if bound > lower:
            lower, best, best_price = bound, class_best, price
        converged = lp.add(*_improving(price, sigma, lp.in_lp, COLUMNS_PER_CLASS_PER_ROUND)) == 0
        close = lp.objective - lower <= mip_gap * max(lp.objective, 1e-9)
        if converged or close or rounds == 1 or remaining(lp_deadline) <= 0:
            plan = _try_round(cp, lp, best_price, deadline) or incumbent
            place_left_out(cp, plan, best_price, deadline)
            improve_moves(cp, plan, deadline)
            rounded = True
            value = _objective(cp, plan)
            if value < upper:
                incumbent, upper = plan, value
        history.append((rounds, round(time.monotonic() - started, 2), round(bound, 2), round(upper, 2)))
        if converged:
            break
    stats["history"] = history
    stats.update(rounds=rounds, lp_converged=converged, columns=len(lp.option_columns()))
    stats["lp_seconds"] = round(time.monotonic() - started, 3)
    if not rounded and remaining(deadline) > 0:
        plan = (_try_round(cp, lp, best_price, deadline) if solved else None) or incumbent
        place_left_out(cp, plan, best_price, deadline)
        improve_moves(cp, plan, deadline)
        value = _objective(cp, plan)
        if value <= upper:
            incumbent, upper = plan, value
    stats["rounded_objective"] = upper
    stats["round_seconds"] = round(time.monotonic() - started, 3)

    if upper - lower > target() + 1e-9 and remaining(deadline) > 0.05 and cp.n <= MAX_MIP_JOBS:
        mip_plan, mip_bound, exact, mip_outcome = _restricted_mip(
            cp, lp, best_price, best, incumbent, upper, lower, solver, deadline, target()
        )
        stats["mip"] = mip_outcome
        stats["mip_exact"] = exact
        if mip_plan is not None:
            value = _objective(cp, mip_plan)
            if exact and mip_bound is not None:
                lower = max(lower, min(upper, mip_bound))
            if value < upper:
                incumbent, upper = mip_plan, value
        stats["mip_seconds"] = round(time.monotonic() - started, 3)
    if lower > upper + 1e-6 * max(1.0, abs(upper)):
        log.warning("bound above the plan's objective", extra={"bound": lower, "objective": upper})
    lower = min(lower, upper)
    proven = upper - lower <= target() + 1e-9
    timed_out = not proven and remaining(deadline) <= 0.05
    return ModelOutcome(incumbent, upper, lower, proven, timed_out, stats)


def _penalty(cp: Compiled, plan: Plan) -> float:
    left = (plan.cluster < 0) & (cp.job_class >= 0)
    return float(cp.penalty_unit * cp.weight[left].sum())
