"""The restricted master LP (master_lp.py): once a simplex run is slow it hands over to the interior point
method, and column generation reaches the same LP optimum and proves the same placement bound either way."""

import math
import time

import pytest

from bench.exact import solve_exact
from bench.hard_instances import HardFamily, make_hard_instance
from services.optimizer import placement
from services.optimizer.columns import cheapest_options, improving_options
from services.optimizer.compiled import compile_problem
from services.optimizer.master_lp import MasterLP
from services.optimizer.placement import maximise_placement, weight_model
from services.optimizer.plan import ClassFiller, Ledger, Plan
from services.optimizer.pricing import LagrangianPrices
from services.optimizer.problem import Options
from services.optimizer.repair import fill_greedily
from services.optimizer.solvers import Outcome

CROWDED = HardFamily("T", 40, 2, 24, 1.0, slack_hours=(1.0, 2.0))


def placement_master(interior_after_s: float | None) -> tuple[MasterLP, float, int]:
    """The placement level's master (options cost 0, a job left out costs its weight) solved to convergence by
    column generation: (master, best Lagrangian bound, solves)."""
    problem, _ = make_hard_instance(CROWDED, 0)
    cp = compile_problem(problem, Options())
    shadow = weight_model(cp)
    prices = LagrangianPrices(shadow)
    lp = MasterLP(shadow, prices, interior_after_s=interior_after_s)
    lp.add(*cheapest_options(cp.cost, 1))
    deadline = time.monotonic() + 30.0
    lower, solves = -math.inf, 0
    while True:
        assert lp.solve(deadline) == Outcome.OPTIMAL
        solves += 1
        sigma, lam = lp.duals()
        price = prices.price(lam)
        lower = max(lower, prices.bound(lam, price)[0])
        if lp.add(*improving_options(price, sigma, lp.in_lp, 1)) == 0:
            return lp, lower, solves


def test_a_slow_simplex_run_hands_the_master_to_the_interior_point_method():
    simplex, simplex_bound, solves = placement_master(None)
    # Every run counts as slow: the switch comes after the first.
    interior, interior_bound, _ = placement_master(0.0)
    assert solves > 1, "column generation must take several rounds for the switch to matter"
    assert not simplex.interior and simplex.h.getOptionValue("solver")[1] != "ipm"
    assert interior.interior and interior.h.getOptionValue("solver")[1] == "ipm"
    # Same LP optimum, and at convergence the Lagrangian bound equals it, whichever method solved the rounds.
    assert interior.objective == pytest.approx(simplex.objective, abs=1e-6)
    assert simplex_bound == pytest.approx(simplex.objective, abs=1e-6)
    assert interior_bound == pytest.approx(interior.objective, abs=1e-6)
    assert simplex.objective > 0.5, "the instance must leave jobs out, or the bound proves nothing"


def test_the_interior_point_master_proves_the_exact_placement_maximum(monkeypatch):
    monkeypatch.setattr(placement, "INTERIOR_AFTER_S", 0.0)
    problem, _ = make_hard_instance(CROWDED, 0)
    cp = compile_problem(problem, Options())
    incumbent = Plan.empty(cp.n)
    fill_greedily(cp, Ledger(cp.free), ClassFiller(cp, incumbent), cp.cost)
    deadline = time.monotonic() + 20.0
    level = maximise_placement(cp, incumbent, deadline, deadline)
    exact = solve_exact(problem, time_limit_s=60.0)
    assert exact.proven
    assert level.weight_bound == exact.max_weight
    assert int((level.plan.cluster >= 0).sum()) == exact.max_weight
