"""Lagrangian prices of every option, and the bound they prove.

For multipliers lam >= 0 on the capacity rows, an option's price is its cost plus lam summed over the slots
and resources it uses. With each class's best price capped by what leaving one of its jobs out costs,

    L(lam) = sum_k n_k min(penalty_k, min_o (cost[k,o] + lam . A[k,o])) - lam . free

is below the optimum of the MILP (weak duality), for any lam >= 0, not only the LP's duals. The capacity rows
are each resource's row and its rounded form (capacity_rows.py): lam, A and free have a column for each.

The carbon level of the lexicographic objective asks for the least cost among plans placing at least a weight
W. Leaving a job out costs nothing there, and a multiplier mu >= 0 on the covering row sum w_j >= W gives

    L(lam, mu) = sum_k n_k min(mu w_k, min_o (cost[k,o] + lam . A[k,o])) - lam . free - mu (W_all - W)

which is the bound above with each class's cap at mu w_k, less mu times the weight that may be left out. For
given lam the best mu is found exactly: L is concave and piecewise linear in mu, and its slope turns
negative where the classes whose best price per unit of weight is at most mu cover W.
"""

from __future__ import annotations

import numpy as np

from services.optimizer.capacity_rows import lp_resources
from services.optimizer.compiled import Compiled


class LagrangianPrices:
    """Prices of every (class, cluster, start) for given capacity multipliers."""

    def __init__(self, cp: Compiled, rows: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None):
        """`rows`: the capacity rows' (req [n, R'], free [C, T, R'], capacity [C, R']) when not `cp`'s own
        (lp_resources)."""
        self.cp = cp
        rep = cp.class_job
        req, self.free, self.capacity = rows if rows is not None else lp_resources(cp)
        self.req = req[rep]  # [K, R']
        self.duration = cp.duration[rep]
        self.groups = [(int(d), np.nonzero(self.duration == d)[0]) for d in np.unique(self.duration)]
        self.penalty = cp.penalty_unit * cp.weight[rep].astype(float)

    def zero(self) -> np.ndarray:
        """[C, T, R']: no multiplier on any capacity row."""
        return np.zeros_like(self.free)

    def price(self, lam: np.ndarray) -> np.ndarray:
        """[K, C, T]: cost + lam summed over the slots and resources each option uses."""
        cp = self.cp
        price = cp.cost.copy()
        active = [r for r in range(lam.shape[2]) if lam[:, :, r].any()]
        if not active:
            return price
        T = cp.slots
        prefix = np.concatenate([np.zeros((cp.clusters, 1, lam.shape[2])), np.cumsum(lam, axis=1)], axis=1)
        for d, group in self.groups:
            S = T - d + 1
            window = prefix[:, d : d + S, :] - prefix[:, :S, :]  # [C, S, R]
            extra = np.einsum("gr,csr->gcs", self.req[group][:, active], window[:, :, active])
            price[group, :, :S] += extra
        return price

    def bound(
        self, lam: np.ndarray, price: np.ndarray, min_weight: float | None = None
    ) -> tuple[float, np.ndarray]:
        """L(lam) and each class's best price (capped by its penalty). With `min_weight`, the bound on the
        cost of plans placing at least that weight, at the best mu, and each class's cap at mu w_k."""
        K = len(self.penalty)
        cheapest = price.reshape(K, -1).min(axis=1)
        if min_weight is None:
            best = np.minimum(cheapest, self.penalty)
            return float((best * self.cp.count).sum() - (lam * self.free).sum()), best
        weight = self.cp.weight[self.cp.class_job].astype(float)
        mu = best_weight_price(cheapest / weight, weight * self.cp.count, min_weight)
        best = np.minimum(cheapest, mu * weight)
        left_out = float((weight * self.cp.count).sum()) - float(min_weight)
        value = (best * self.cp.count).sum() - (lam * self.free).sum() - mu * left_out
        return float(value), best


def best_weight_price(ratio: np.ndarray, weight: np.ndarray, min_weight: float) -> float:
    """The mu >= 0 maximising sum_k min(mu w_k, r_k w_k) n_k - mu (W_all - W): the smallest ratio r at which
    the classes with r_k <= r weigh at least W (0 when W <= 0)."""
    if min_weight <= 0:
        return 0.0
    order = np.argsort(ratio, kind="stable")
    covered = np.cumsum(weight[order])
    at = int(np.searchsorted(covered, float(min_weight) - 1e-9))
    return float(max(0.0, ratio[order[min(at, len(order) - 1)]]))
