"""Column selection for the restricted master LP: which options enter it."""

from __future__ import annotations

import numpy as np

REDUCED_COST_TOL = 1e-9

Options = tuple[np.ndarray, np.ndarray, np.ndarray]  # (class, cluster, start) of each option


def cheapest_options(cost: np.ndarray, per_class: int) -> Options:
    """Each class's `per_class` cheapest allowed options."""
    K, C, T = cost.shape
    flat = cost.reshape(K, -1)
    m = min(per_class, flat.shape[1])
    pick = np.argpartition(flat, m - 1, axis=1)[:, :m]
    ks = np.repeat(np.arange(K), m)
    opts = pick.reshape(-1)
    finite = np.isfinite(flat[ks, opts])
    ks, opts = ks[finite], opts[finite]
    return ks, opts // T, opts % T


def cheapest_per_cluster(cost: np.ndarray) -> Options:
    """Each class's cheapest allowed option on every cluster."""
    per_cluster = np.argmin(cost, axis=2)
    ks, cs = np.nonzero(np.isfinite(cost.min(axis=2)))
    return ks, cs, per_cluster[ks, cs]


def improving_options(price: np.ndarray, sigma: np.ndarray, in_lp: np.ndarray, per_class: int) -> Options:
    """Up to `per_class` options per class not yet in the LP whose reduced cost (price - sigma) is negative."""
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
