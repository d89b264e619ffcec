"""The rounded capacity rows (capacity_rows.py): valid for every plan, and they prove what the plain rows
cannot when jobs are large against a cluster."""

import time
from datetime import timedelta

import numpy as np

from services.common.energy import Power
from services.optimizer.capacity_rows import lp_resources, rounding_units
from services.optimizer.compiled import compile_problem
from services.optimizer.placement import maximise_placement
from services.optimizer.plan import Plan
from services.optimizer.problem import Cluster, Forecast, Grid, Job, Options, Problem, Resources, Status
from services.optimizer.solve import solve
from tests.optimizer.test_property import SLOT, START

HOUR = timedelta(hours=1)


def two_crowded_hours() -> Problem:
    """One cluster of 1.8 cores; four one-core jobs, two that must run in hour 0 and two in hour 1. One job
    fits per hour, so at most 2 are placed. The LP of the plain core rows runs 1.8 jobs per hour (3.6 in
    all: it proves only "at most 3"); the rounded rows (cores in units of the smallest request, 1 core, so at
    most floor(1.8) = 1 job per hour) prove 2."""
    cluster = Cluster("c0", "Z0", Resources(cpu_millis=1800), Power(watts_per_core=10.0))
    jobs = tuple(
        Job(
            id=f"j{i}",
            resources=Resources(cpu_millis=1000),
            runtime=HOUR,
            earliest_start=START + (i // 2) * HOUR,
            deadline=START + (i // 2 + 1) * HOUR,
        )
        for i in range(4)
    )
    forecast = Forecast("c0", (100.0, 200.0))
    return Problem(jobs, (cluster,), Grid(START, timedelta(seconds=SLOT), 2), (forecast,))


def test_rounded_rows_count_whole_jobs():
    cp = compile_problem(two_crowded_hours(), Options())
    assert rounding_units(cp).tolist() == [1000.0, 0.0, 0.0]  # no job asks for memory or GPUs
    req, free, capacity = lp_resources(cp)
    assert req.shape == (4, 4) and free.shape == (1, 2, 4) and capacity.shape == (1, 4)
    assert req[:, 3].tolist() == [1.0] * 4
    assert free[0, :, 3].tolist() == [1.0, 1.0]  # floor(1800 / 1000)
    assert np.array_equal(req[:, :3], cp.req) and np.array_equal(free[:, :, :3], cp.free)


def test_the_placement_bound_is_the_true_maximum_where_the_plain_lp_says_3():
    cp = compile_problem(two_crowded_hours(), Options())
    incumbent = Plan.empty(cp.n)
    incumbent.place(0, 0, 0)
    incumbent.place(2, 0, 1)
    deadline = time.monotonic() + 5.0
    level = maximise_placement(cp, incumbent, deadline, deadline)
    assert level.weight_bound == 2
    assert level.mip is None  # proven by the LP's Lagrangian bound alone, no MILP needed

    result = solve(two_crowded_hours(), Options(time_limit_s=5.0))
    assert result.placed_count == 2
    assert result.placed_weight_bound == 2  # "2 placed is the most any plan places", proven
    assert result.status == Status.OPTIMAL
