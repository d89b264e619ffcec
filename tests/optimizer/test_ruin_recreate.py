"""Ruin and recreate makes room for a job left out when one blocking job moved is not enough, and finds the
cheaper plans that moving one job at a time cannot reach."""

import time
from datetime import timedelta

import pytest

from services.common.energy import Power
from services.optimizer.compiled import compile_problem
from services.optimizer.plan import Plan, class_cost, placed_weight
from services.optimizer.problem import Cluster, Forecast, Grid, Job, Options, Problem, Resources
from services.optimizer.repair import improve_moves, place_left_out
from services.optimizer.ruin_recreate import ruin_and_recreate, ruin_and_recreate_carbon
from services.optimizer.verify import verify_plan
from tests.optimizer.test_property import SLOT, START


def two_blockers() -> Problem:
    """One core, four hourly slots. `long` must run in slots 1-2; `a` and `b` (one hour, any slot) sit there.
    Moving `a` alone or `b` alone leaves no room: both must move (to slots 0 and 3)."""
    cluster = Cluster("c0", "Z0", Resources(cpu_millis=1000), Power(watts_per_core=10.0))
    hour = timedelta(hours=1)
    jobs = (
        Job(id="a", resources=Resources(cpu_millis=1000), runtime=hour, deadline=START + 4 * hour),
        Job(id="b", resources=Resources(cpu_millis=1000), runtime=hour, deadline=START + 4 * hour),
        Job(
            id="long",
            resources=Resources(cpu_millis=1000),
            runtime=2 * hour,
            earliest_start=START + hour,
            deadline=START + 3 * hour,
        ),
    )
    forecast = Forecast("c0", (300.0, 100.0, 100.0, 300.0))
    return Problem(jobs, (cluster,), Grid(START, timedelta(seconds=SLOT), 4), (forecast,))


def test_one_blocker_moved_is_not_enough_but_ruin_and_recreate_places_all():
    problem = two_blockers()
    cp = compile_problem(problem, Options())
    plan = Plan.empty(cp.n)
    plan.place(0, 0, 1)  # a in slot 1
    plan.place(1, 0, 2)  # b in slot 2
    deadline = time.monotonic() + 5.0
    assert place_left_out(cp, plan, cp.cost, deadline) == 0
    assert placed_weight(cp, plan) == 2

    assert ruin_and_recreate(cp, plan, cp.cost, deadline) == 1
    assert placed_weight(cp, plan) == 3
    assert (int(plan.cluster[2]), int(plan.start[2])) == (0, 1)
    assert sorted(int(s) for s in plan.start[:2]) == [0, 3]
    assert not verify_plan(cp, plan)


def test_ruin_and_recreate_keeps_the_plan_when_nothing_is_left_out():
    problem = two_blockers()
    cp = compile_problem(problem, Options())
    plan = Plan.empty(cp.n)
    for j, s in ((0, 0), (1, 3), (2, 1)):
        plan.place(j, 0, s)
    before = (plan.cluster.copy(), plan.start.copy())
    assert ruin_and_recreate(cp, plan, cp.cost, time.monotonic() + 5.0) == 0
    assert (plan.cluster == before[0]).all() and (plan.start == before[1]).all()


def swap_pair() -> Problem:
    """One core, two hourly slots, slot 0 clean and slot 1 dirty. `big` (a whole core) and `small` (a tenth,
    so a tenth of the watts) cannot share a slot. With `small` in the clean slot no single move helps: `big`'s
    cheaper slot is taken, and `small` already sits in its cheapest one. Only the swap does."""
    cluster = Cluster("c0", "Z0", Resources(cpu_millis=1000), Power(watts_per_core=10.0))
    hour = timedelta(hours=1)
    jobs = (
        Job(id="big", resources=Resources(cpu_millis=1000), runtime=hour, deadline=START + 2 * hour),
        Job(id="small", resources=Resources(cpu_millis=100), runtime=hour, deadline=START + 2 * hour),
    )
    forecast = Forecast("c0", (100.0, 500.0))
    return Problem(jobs, (cluster,), Grid(START, timedelta(seconds=SLOT), 2), (forecast,))


def test_carbon_ruin_and_recreate_swaps_what_single_moves_cannot():
    problem = swap_pair()
    cp = compile_problem(problem, Options())
    plan = Plan.empty(cp.n)
    plan.place(0, 0, 1)  # big in the dirty slot
    plan.place(1, 0, 0)  # small in the clean slot
    before = class_cost(cp, plan)
    assert improve_moves(cp, plan, time.monotonic() + 5.0) == 0

    k = cp.job_class
    swapped = float(cp.cost[k[0], 0, 0] + cp.cost[k[1], 0, 1])
    assert swapped < before
    deadline = time.monotonic() + 5.0
    kept = ruin_and_recreate_carbon(cp, plan, cp.cost, deadline, stop_at=swapped, jobs_per_step=2)
    assert time.monotonic() < deadline  # it stopped at the optimum, not at the deadline
    assert kept >= 1
    assert (int(plan.start[0]), int(plan.start[1])) == (0, 1)
    assert placed_weight(cp, plan) == 2
    assert class_cost(cp, plan) == pytest.approx(swapped)
    assert not verify_plan(cp, plan)


def test_carbon_ruin_and_recreate_never_loses_weight_nor_raises_cost():
    problem = two_blockers()
    cp = compile_problem(problem, Options())
    plan = Plan.empty(cp.n)
    for j, s in ((0, 0), (1, 3), (2, 1)):
        plan.place(j, 0, s)
    before = class_cost(cp, plan)
    ruin_and_recreate_carbon(cp, plan, cp.cost, time.monotonic() + 0.3, jobs_per_step=3)
    assert placed_weight(cp, plan) == 3
    assert class_cost(cp, plan) <= before + 1e-9
    assert not verify_plan(cp, plan)
