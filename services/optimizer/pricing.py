"""Lagrangian prices of every option, and the bound they prove.

For multipliers lam >= 0 on the capacity rows, an option's price is its cost plus lam summed over the slots
and resources it uses. With each class's best price capped by what leaving one of its jobs out costs,

    L(lam) = sum_k n_k min(penalty_k, min_o (cost[k,o] + lam . A[k,o])) - lam . free

is below the optimum of the MILP (weak duality), for any lam >= 0, not only the LP's duals.
"""

from __future__ import annotations

import numpy as np

from services.optimizer.compiled import RESOURCES, Compiled


class LagrangianPrices:
    """Prices of every (class, cluster, start) for given capacity multipliers."""

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
