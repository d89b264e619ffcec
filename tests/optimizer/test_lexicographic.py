"""Placement first, then carbon (D1), checked against an independent exact MILP (bench/exact.py: one binary
per job, cluster and start slot on HiGHS, sharing no code with the optimizer but the problem types and the
energy model).

The instances are small versions of the benchmark's hard families (bench/hard_instances.py): load up to 1.0,
one to two hours of slack, a share of impossible deadlines and, in half of them, bursts of identical jobs.
"""

import math

import numpy as np
import pytest

from bench.exact import solve_exact
from bench.hard_instances import HardFamily, make_hard_instance
from services.optimizer.compiled import compile_problem
from services.optimizer.pricing import LagrangianPrices
from services.optimizer.problem import Options, Status, UnplacedReason
from services.optimizer.solve import solve

CASES = [(HardFamily("T", 40, 2, 24, 1.0, slack_hours=(1.0, 2.0)), seed) for seed in range(3)] + [
    (HardFamily("B", 60, 2, 24, 1.0, slack_hours=(1.0, 2.0), burst_shapes=3, burst_slots=4), s)
    for s in range(3)
]


@pytest.mark.parametrize("family, seed", CASES, ids=[f"{f.name}-{s}" for f, s in CASES])
def test_most_weight_then_least_carbon_equals_the_exact_model(family, seed):
    problem, _ = make_hard_instance(family, seed)
    result = solve(problem, Options(time_limit_s=20.0, mip_gap=0.0))
    exact = solve_exact(problem, time_limit_s=60.0)
    assert exact.proven, "the exact model must finish on these sizes"
    # Level 1: as much weight as any plan places, and proven so.
    assert result.placed_weight == exact.max_weight
    assert result.placed_weight_bound == exact.max_weight
    # Level 2: the least carbon among plans placing that much; the bound never above it.
    assert result.objective_gco2 == pytest.approx(exact.cost, rel=1e-6, abs=1e-6)
    assert result.lower_bound_gco2 <= exact.cost + 1e-6
    assert result.status == Status.OPTIMAL
    impossible = [p for p in result.placements if p.reason == UnplacedReason.DEADLINE]
    assert all(not p.placed for p in impossible)


def test_identical_jobs_are_one_class_with_a_count():
    family = HardFamily("B", 60, 2, 24, 1.0, slack_hours=(1.0, 2.0), burst_shapes=3, burst_slots=4)
    problem, _ = make_hard_instance(family, 0)
    cp = compile_problem(problem, Options())
    placeable = int((cp.job_class >= 0).sum())
    # 3 shapes x 4 arrival slots x 2 slacks at most
    assert cp.classes <= 24 < placeable
    assert int(cp.count.sum()) == placeable


@pytest.mark.parametrize("seed", range(3))
def test_the_carbon_level_bound_holds_for_any_prices(seed):
    """L(lam, best mu) at a weight floor W is below the least cost of any plan placing at least W."""
    family = HardFamily("T", 40, 2, 24, 1.0, slack_hours=(1.0, 2.0))
    problem, _ = make_hard_instance(family, seed)
    cp = compile_problem(problem, Options())
    exact = solve_exact(problem, time_limit_s=60.0)
    assert exact.proven
    prices = LagrangianPrices(cp)
    rng = np.random.default_rng(seed)
    scale = 1e-3 / np.maximum(prices.capacity, 1.0)
    for _ in range(10):
        shape = prices.free.shape  # every capacity row, the rounded ones too (capacity_rows.py)
        lam = rng.exponential(1.0, size=shape) * scale[:, None, :] * (rng.random(shape) < 0.3)
        bound, _ = prices.bound(lam, prices.price(lam), exact.max_weight)
        assert bound <= exact.cost + 1e-6 * max(1.0, abs(exact.cost))
    assert math.isfinite(bound)
