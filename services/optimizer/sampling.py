"""Capacity prices from the LP of a random sample of the classes, for problems with many classes."""

from __future__ import annotations

import dataclasses

import numpy as np

from services.optimizer.capacity_rows import lp_resources
from services.optimizer.columns import cheapest_options, cheapest_per_cluster, improving_options
from services.optimizer.compiled import Compiled
from services.optimizer.master_lp import MasterLP
from services.optimizer.pricing import LagrangianPrices
from services.optimizer.solvers import Outcome

MAX_ROUNDS = 200
SAMPLE_MIN_CLASSES = 200
SAMPLE_SHARE = 0.1
SAMPLE_INITIAL_OPTIONS = 6
SAMPLE_COLUMNS_PER_ROUND = 6
SAMPLE_SEED = 20240901


def sample_prices(cp: Compiled, deadline: float) -> tuple[np.ndarray | None, int, int]:
    """Capacity prices from the LP of a random sample of the classes with the same share of capacity.

    With many jobs the prices of a proportional sample are close to those of the whole (each cell's
    price depends on aggregate demand); they are only a guide: the bound they give is evaluated on the
    whole problem, L(lam) is valid for any lam >= 0. Returns (lam or None, sampled classes, LP rounds)."""
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
    # The same share of every capacity row: the rounded rows of the whole problem scaled, not the scaled
    # capacity rounded (which would cut capacity the whole problem has).
    req, free, capacity = lp_resources(cp)
    prices = LagrangianPrices(sample, (req, free * share, capacity))
    lp = MasterLP(sample, prices)
    lp.add(*cheapest_options(sample.cost, SAMPLE_INITIAL_OPTIONS))
    lp.add(*cheapest_per_cluster(sample.cost))
    lam = None
    rounds = 0
    while rounds < MAX_ROUNDS:
        rounds += 1
        if lp.solve(deadline) != Outcome.OPTIMAL:
            break
        sigma, lam = lp.duals()
        if not lp.add(*improving_options(prices.price(lam), sigma, lp.in_lp, SAMPLE_COLUMNS_PER_ROUND)):
            break
    return lam, size, rounds
