"""The time limit is a wall-clock limit, and a solve cut short never calls itself optimal."""

import time

import numpy as np
import pulp
import pytest

from bench.instances import make_instance
from services.optimizer.problem import Options, Policy, Solver, Status
from services.optimizer.solve import solve
from services.optimizer.solvers import Outcome, cbc_outcome, solve_mip_cbc, solve_mip_highs

# Slack for a loaded machine; the solves below would run for minutes without their limit.
SLACK_S = 2.5


def hard_knapsack():
    rng = np.random.default_rng(7)
    prob = pulp.LpProblem("knapsack", pulp.LpMinimize)
    x = [prob.add_variable(f"x{i}", 0, 1, cat=pulp.LpInteger) for i in range(300)]
    prob += pulp.LpAffineExpression([(v, -float(rng.integers(50, 100))) for v in x])
    for k in range(20):
        terms = [(v, float(rng.integers(1, 100))) for v in x]
        prob += pulp.LpConstraint(pulp.LpAffineExpression(terms), pulp.LpConstraintLE, f"c{k}", 1000.0)
    return prob


@pytest.mark.parametrize("runner", [solve_mip_cbc, solve_mip_highs], ids=["cbc", "highs"])
def test_solver_stops_at_the_deadline_without_claiming_optimality(runner):
    limit = 0.6
    began = time.monotonic()
    result, variables = runner(hard_knapsack(), began + limit, 0.0, 0.0, None)
    elapsed = time.monotonic() - began
    assert elapsed < limit + SLACK_S
    assert result.outcome in (Outcome.FEASIBLE, Outcome.NO_SOLUTION)
    if result.outcome == Outcome.FEASIBLE:
        assert result.values is not None and len(result.values) == len(variables)


# The naive MILP with CBC on L-1 finds no solution in 40 s (measured), and answers a 1.5 s limit in 1.45 s on
# an idle machine: a bound of 1.5 + 6 s still tells a kept limit from an ignored one, with room for a machine
# running other suites. (On M-1, solved in about 10 s, the old 1.5 + 2.5 s bound was seen failing under load.)
NAIVE_SLACK_S = 6.0


def test_naive_milp_with_cbc_honours_the_limit():
    problem = make_instance("L", 1)
    result = solve(problem, Options(policy=Policy.NAIVE_MILP, solver=Solver.CBC, time_limit_s=1.5))
    assert result.wall_seconds < 1.5 + NAIVE_SLACK_S
    assert result.status in (Status.FEASIBLE, Status.NO_SOLUTION_IN_TIME)
    if result.status == Status.NO_SOLUTION_IN_TIME:
        assert result.placed_count == 0
        assert all(p.reason is not None for p in result.placements)


def test_caspian_under_a_short_limit_still_answers_a_checked_plan():
    problem = make_instance("L", 2)
    result = solve(problem, Options(time_limit_s=1.0, mip_gap=1e-6))
    assert result.wall_seconds < 1.0 + SLACK_S
    assert result.status in (Status.FEASIBLE, Status.NO_SOLUTION_IN_TIME, Status.OPTIMAL)
    if result.status != Status.NO_SOLUTION_IN_TIME:
        assert result.placed_count > 0
        assert result.lower_bound_gco2 <= result.objective_gco2


@pytest.mark.parametrize(
    "line, outcome",
    [
        ("Optimal - objective value 12.5", Outcome.OPTIMAL),
        ("Stopped on time - objective value 13.0", Outcome.FEASIBLE),
        (
            "Stopped on time (no integer solution - continuous used) - objective value 11.2",
            Outcome.NO_SOLUTION,
        ),
        ("Stopped on iterations - objective value 13.0", Outcome.FEASIBLE),
        ("Infeasible - objective value 0", Outcome.INFEASIBLE),
        ("Integer infeasible - objective value 0", Outcome.INFEASIBLE),
        ("Stopped on time", Outcome.NO_SOLUTION),
    ],
)
def test_cbc_status_lines(line, outcome):
    assert cbc_outcome(line) == outcome


def test_repeated_highs_runs_each_get_the_time_left():
    """HiGHS compares an LP's time limit with the run time accumulated over runs of one object, so each
    run's limit must be that total plus the time left, or column generation stops early."""
    import highspy

    from services.optimizer.solvers import run_highs

    rng = np.random.default_rng(0)
    h = highspy.Highs()
    h.silent()
    n, m = 3000, 300
    inf = highspy.kHighsInf
    h.addCols(
        n,
        rng.random(n),
        np.zeros(n),
        np.full(n, inf),
        0,
        np.zeros(1, np.int32),
        np.zeros(0, np.int32),
        np.zeros(0),
    )
    for _ in range(m):
        idx = np.sort(rng.choice(n, 200, replace=False)).astype(np.int32)
        h.addRow(1.0, inf, 200, idx, rng.random(200))
    for _ in range(3):
        h.clearSolver()
        spent = h.getRunTime()
        deadline = time.monotonic() + 30
        left = deadline - time.monotonic()
        assert run_highs(h, deadline)
        assert h.getModelStatus() == highspy.HighsModelStatus.kOptimal
        # the limit is the run time so far plus the time left, not the time left alone
        assert h.getOptionValue("time_limit")[1] >= spent + left - 0.005
    assert spent > 0.01  # the later runs started with run time already on the clock


# The hard guard (D5): the whole call ends within the limit plus 2 %.
HARD_TOLERANCE = 0.02


def test_a_step_that_ignores_its_deadline_is_cut_at_the_limit_with_the_best_plan_so_far(monkeypatch):
    """A policy step that overruns (here: one that sleeps through its deadline) does not hold the answer: the
    solve answers the plan the policy offered last, checked like any other."""
    import services.optimizer.model as model
    from bench.hard_instances import make_hard_instance

    def stuck(*_args, **_kwargs):
        time.sleep(4.0)
        return 0

    monkeypatch.setattr(model, "improve_moves", stuck)
    monkeypatch.setattr(model, "place_left_out", stuck)
    problem, _ = make_hard_instance("D96-tight", 1)
    limit = 1.5
    began = time.monotonic()
    result = solve(problem, Options(time_limit_s=limit))
    elapsed = time.monotonic() - began
    assert elapsed <= limit * (1 + HARD_TOLERANCE)
    assert result.wall_seconds <= limit * (1 + HARD_TOLERANCE)
    assert result.status == Status.FEASIBLE
    assert "overran its deadline" in result.message
    assert result.placed_count > 0  # the greedy plan offered first
    assert result.lower_bound_gco2 <= result.objective_gco2
    assert result.placed_weight_bound is None or result.placed_weight_bound >= result.placed_weight


@pytest.mark.parametrize("family, seed", [("D96-tight", 1), ("D96-1000", 0), ("D96-burst", 0)])
def test_caspian_ends_within_the_limit_plus_two_percent(family, seed):
    from bench.hard_instances import make_hard_instance

    problem, _ = make_hard_instance(family, seed)
    limit = 2.0
    began = time.monotonic()
    result = solve(problem, Options(time_limit_s=limit))
    assert time.monotonic() - began <= limit * (1 + HARD_TOLERANCE)
    assert result.status in (Status.FEASIBLE, Status.OPTIMAL)
    assert result.placed_count > 0


@pytest.mark.parametrize("seed", range(3))
def test_the_bounds_answered_by_the_guard_hold_against_the_exact_model(monkeypatch, seed):
    """Cut off late, the answer's bounds are the ones the policy had proven: never above the least cost of the
    plans placing as much (exact model at that weight), never below the weight the exact model places."""
    import services.optimizer.model as model
    from bench.exact import solve_exact
    from bench.hard_instances import HardFamily, make_hard_instance

    def stuck(*_args, **_kwargs):
        time.sleep(3.0)
        return 0

    monkeypatch.setattr(model, "improve_moves", stuck)
    problem, _ = make_hard_instance(HardFamily("T", 40, 2, 24, 1.0, slack_hours=(1.0, 2.0)), seed)
    result = solve(problem, Options(time_limit_s=1.0, mip_gap=0.0))
    assert result.wall_seconds <= 1.0 * (1 + HARD_TOLERANCE)
    assert "overran its deadline" in result.message
    assert result.placed_count > 0
    exact = solve_exact(problem, 60.0)
    at_weight = solve_exact(problem, 60.0, min_weight=result.placed_weight)
    assert exact.proven and at_weight.cost is not None
    assert result.lower_bound_gco2 <= at_weight.cost + 1e-6 * max(1.0, at_weight.cost)
    assert result.objective_gco2 >= at_weight.cost - 1e-6 * max(1.0, at_weight.cost)
    if result.placed_weight_bound is not None:
        assert result.placed_weight_bound >= exact.max_weight
