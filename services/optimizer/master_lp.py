"""The restricted master LP on HiGHS: the LP relaxation over the options found so far.

Rows: one per class (every job decided once: sum_o y[k,o] + u[k] = n_k), one per capacity cell and row
(each resource's and its rounded form, capacity_rows.py) that some combination of options could overfill
(scaled by the cluster's capacity) and, with `min_weight`, one covering
row: sum_k w_k sum_o y[k,o] >= min_weight (the placement level the carbon level must keep). Columns: u[k]
(jobs left out, at `left_out_cost[k]` each) and the option columns added as pricing finds them. The same
model with integer columns is the restricted MILP (restricted_mip.py).
"""

from __future__ import annotations

import time

import highspy
import numpy as np

from services.optimizer.compiled import RESOURCES, Compiled
from services.optimizer.pricing import LagrangianPrices
from services.optimizer.solvers import highs_lp_outcome, run_highs


class MasterLP:
    """The restricted master LP on HiGHS; columns are added as pricing finds them."""

    def __init__(
        self,
        cp: Compiled,
        prices: LagrangianPrices,
        left_out_cost: np.ndarray | None = None,
        min_weight: float | None = None,
        interior_after_s: float | None = None,
    ):
        """`interior_after_s`: once one simplex run takes longer than this, later runs use the interior point
        method (with crossover, so the solution stays basic): on large degenerate masters its time grows far
        more slowly with the columns than a warm-started simplex's."""
        self.cp = cp
        self.interior_after_s = interior_after_s
        self.interior = False
        self.prices = prices
        self.weight = cp.weight[cp.class_job].astype(float)
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
        free_rows[self.rowmap[where] - K] = prices.free[where] / self.scale[where[0], where[2]]
        lower = np.concatenate([count, np.full(self.cap_rows, -inf)])
        upper = np.concatenate([count, free_rows])
        self.h.addRows(
            K + self.cap_rows, lower, upper, 0, np.zeros(1, np.int32), np.zeros(0, np.int32), np.zeros(0)
        )
        self.cover_row = -1
        left_out_upper = count
        if min_weight is not None and min_weight >= float((self.weight * cp.count).sum()) - 1e-9:
            # Every job placed: no job may be left out, and no covering row is needed.
            left_out_upper, min_weight = np.zeros(K), None
        if min_weight is not None:
            self.cover_row = K + self.cap_rows
            self.h.addRows(
                1, np.array([float(min_weight)]), np.array([inf]), 0, np.zeros(1, np.int32), [], []
            )
        # u[k]: jobs of class k left out
        self.h.addCols(
            K,
            prices.penalty if left_out_cost is None else left_out_cost,
            np.zeros(K),
            left_out_upper,
            K,
            np.arange(K, dtype=np.int32),
            np.arange(K, dtype=np.int32),
            np.ones(K),
        )
        self.columns: list[np.ndarray] = []  # (k, c, s) of option columns in LP order
        self.in_lp = np.zeros((K, C, T), dtype=bool)

    def _capacity_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Rows some combination of options could overfill; the rest can never bind."""
        cp, free = self.cp, self.prices.free
        K, C, T = cp.classes, cp.clusters, cp.slots
        R = free.shape[2]
        demand = np.zeros((C, T, R))
        valid = np.isfinite(cp.cost)
        for d, group in self.prices.groups:
            starts = np.concatenate([np.zeros((len(group), C, 1)), np.cumsum(valid[group], axis=2)], axis=2)
            t = np.arange(T)
            covered = starts[:, :, t + 1] - starts[:, :, np.maximum(0, t - d + 1)] > 0  # [G, C, T]
            weight = self.prices.req[group] * cp.count[group, None]
            demand += np.einsum("gct,gr->ctr", covered.astype(float), weight)
        binding = demand > free + 1e-9
        # A row is implied by another resource's row on the same (cluster, slot) when every job needs at most
        # free[r2]/free[r1] of r2 per unit of r1: then sum req[r2] y <= ratio sum req[r1] y <= free[r2].
        # The rounded rows (capacity_rows.py) come first: where rounding adds nothing, the plain row implies
        # the rounded one, and the plain row is kept.
        req = self.prices.req
        for r2 in [*range(RESOURCES, R), *range(RESOURCES)]:
            for r1 in range(R):
                if r1 == r2:
                    continue
                users = req[:, r2] > 0
                if not users.any():
                    continue
                if (req[users, r1] <= 0).any():
                    continue
                ratio = float((req[users, r2] / req[users, r1]).max())
                implied = binding[:, :, r1] & (ratio * free[:, :, r1] <= free[:, :, r2] * (1 + 1e-12))
                binding[:, :, r2] &= ~implied
        rowmap = np.full((C, T, R), -1, dtype=np.int64)
        rowmap[binding] = np.arange(int(binding.sum())) + K
        scale = np.where(self.prices.capacity > 0, self.prices.capacity, 1.0)
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
        for r in range(prices.req.shape[1]):
            need = prices.req[ks, r]
            if not (need > 0).any():
                continue
            row = self.rowmap[cs[:, None], slots, r]
            ok = in_run & (row >= 0) & (need[:, None] > 0)
            rows.append(np.where(ok, row, -1))
            vals.append(np.where(ok, need[:, None] / self.scale[cs, r][:, None], 0.0))
        if self.cover_row >= 0:
            rows.append(np.full((len(ks), 1), self.cover_row, dtype=np.int64))
            vals.append(self.weight[ks][:, None])
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
        started = time.monotonic()
        outcome = highs_lp_outcome(self.h, run_highs(self.h, deadline))
        slow = self.interior_after_s is not None and time.monotonic() - started > self.interior_after_s
        if slow and not self.interior:
            self.h.setOptionValue("solver", "ipm")
            self.interior = True
        return outcome

    def duals(self) -> tuple[np.ndarray, np.ndarray]:
        """(class duals sigma [K], capacity multipliers lam [C, T, R] per unit of resource, >= 0).

        With a covering row, sigma includes its dual times each class's weight, so that an option's reduced
        cost is still price - sigma."""
        cp = self.cp
        row_dual = np.asarray(self.h.getSolution().row_dual)
        sigma = row_dual[: cp.classes].copy()
        if self.cover_row >= 0:
            sigma += max(0.0, float(row_dual[self.cover_row])) * self.weight
        lam = self.prices.zero()
        where = np.nonzero(self.rowmap >= 0)
        lam[where] = np.maximum(0.0, -row_dual[self.rowmap[where]]) / self.scale[where[0], where[2]]
        return sigma, lam

    def primal(self) -> tuple[np.ndarray, np.ndarray]:
        """(u [K], y per option column)."""
        values = np.asarray(self.h.getSolution().col_value)
        K = self.cp.classes
        return values[:K], values[K:]

    def make_integer(self) -> None:
        """Every column integer: the restricted MILP over the columns added."""
        n = self.h.getNumCol()
        self.h.changeColsIntegrality(
            n, np.arange(n, dtype=np.int32), np.full(n, highspy.HighsVarType.kInteger)
        )

    @property
    def objective(self) -> float:
        return float(self.h.getInfo().objective_function_value)
