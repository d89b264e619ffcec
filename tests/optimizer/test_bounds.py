"""The bound is always valid and means something (D2), and no plan means no bound (D3).

Checked against an exhaustive enumeration (tests/optimizer/test_property.py's options, computed from the grid
definition independently of the optimizer's arrays): for every policy, the reported bound is at most the least
cost of any plan placing at least as much priority weight, and the reported weight bound is at least the most
weight any plan places.
"""

import itertools
import math
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings

from caspian.v1 import optimizer_pb2
from services.common.energy import Power
from services.optimizer.problem import (
    Cluster,
    Forecast,
    Grid,
    Job,
    Options,
    Policy,
    Problem,
    Resources,
    Status,
)
from services.optimizer.solve import solve
from tests.optimizer import builders as b
from tests.optimizer.test_property import SLOT, START, options_of, tiny_problems


def frontier(problem: Problem, opts: Options) -> dict[int, float]:
    """Priority weight placed -> least cost of a plan placing exactly that weight, over every plan."""
    choices = [[None, *options_of(problem, job, opts)] for job in problem.jobs]
    weights = [1 + min(max(job.priority, 0), 9) for job in problem.jobs]
    names = [c.name for c in problem.clusters]
    best: dict[int, float] = {}
    for combo in itertools.product(*choices):
        used: dict[tuple[int, int], list[int]] = {}
        for r in problem.reservations:
            for t in range(r.start_slot, min(r.end_slot, problem.grid.slots)):
                cell = used.setdefault((names.index(r.cluster), t), [0, 0])
                cell[0] += r.resources.cpu_millis
                cell[1] += r.resources.gpus
        ok = True
        for job, pick in zip(problem.jobs, combo, strict=True):
            if pick is None:
                continue
            c, s, _ = pick
            for t in range(s, s + math.ceil(job.runtime.total_seconds() / SLOT - 1e-9)):
                cell = used.setdefault((c, t), [0, 0])
                cell[0] += job.resources.cpu_millis
                cell[1] += job.resources.gpus
                cap = problem.clusters[c].capacity
                ok &= cell[0] <= cap.cpu_millis and cell[1] <= cap.gpus
        if ok:
            weight = sum(w for w, pick in zip(weights, combo, strict=True) if pick is not None)
            cost = sum(pick[2] for pick in combo if pick is not None)
            best[weight] = min(best.get(weight, math.inf), cost)
    return best


def least_cost_at_least(front: dict[int, float], weight: int) -> float:
    return min(cost for w, cost in front.items() if w >= weight)


POLICIES = [
    Policy.CASPIAN,
    Policy.TEMPORAL_ONLY,
    Policy.GREEDY_CARBON,
    Policy.LEAST_LOADED,
    Policy.NAIVE_MILP,
]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tiny_problems())
def test_every_bound_holds_against_exhaustive_enumeration(case):
    problem, options = case
    front = frontier(problem, options)
    most = max(front)
    for policy in POLICIES:
        result = solve(problem, Options(**{**options.__dict__, "policy": policy}))
        assert result.has_bound, policy
        assert result.lower_bound_gco2 <= least_cost_at_least(front, result.placed_weight) + 1e-7, policy
        assert result.lower_bound_gco2 <= result.objective_gco2 + 1e-9
        if result.placed_weight_bound is not None:
            assert result.placed_weight_bound >= most, policy
        if result.placed_weight == result.placed_weight_bound:
            assert result.placed_weight == most


def burst(count: int, capacity_cores: int, slots: int = 2) -> Problem:
    """`count` identical one-core, one-hour jobs that must finish within `slots` hours on one cluster with
    room for `capacity_cores` at a time: at most capacity_cores x slots can be placed."""
    cluster = Cluster("c0", "Z0", Resources(cpu_millis=capacity_cores * 1000), Power(watts_per_core=10.0))
    jobs = tuple(
        Job(
            id=f"j{i}",
            resources=Resources(cpu_millis=1000),
            runtime=timedelta(hours=1),
            deadline=START + timedelta(hours=slots),
        )
        for i in range(count)
    )
    forecast = Forecast("c0", tuple(100.0 + 50.0 * t for t in range(slots + 2)))
    return Problem(jobs, (cluster,), Grid(START, timedelta(seconds=SLOT), slots + 2), (forecast,))


@pytest.mark.parametrize("policy", [Policy.CASPIAN, Policy.TEMPORAL_ONLY, Policy.GREEDY_CARBON])
def test_leaving_out_what_cannot_fit_keeps_a_useful_bound(policy):
    """5 jobs, room for 4: the plan placing 4 is the best there is, and its bound is not 0 (nor its gap
    100 %) because a job was left out."""
    problem = burst(5, capacity_cores=2)
    result = solve(problem, Options(policy=policy, time_limit_s=10.0))
    front = frontier(problem, Options())
    assert max(front) == 4 and result.placed_count == 4
    # two jobs at 100 g/kWh x 10 W for an hour, two at 150: 1.0 + 1.0 + 1.5 + 1.5 g
    optimum = least_cost_at_least(front, 4)
    assert optimum == pytest.approx(5.0, abs=0.01)
    assert 0 < result.lower_bound_gco2 <= optimum + 1e-9
    if policy == Policy.CASPIAN:
        assert result.status == Status.OPTIMAL and result.gap <= 0.01
    else:
        # the heuristics' capacity-free bound: all four at the cleanest hour, 4.0 g
        assert result.lower_bound_gco2 == pytest.approx(4.0, abs=0.01)


def test_no_plan_in_time_has_no_bound_and_no_gap():
    problem = burst(300, capacity_cores=40, slots=8)
    result = solve(problem, Options(policy=Policy.NAIVE_MILP, time_limit_s=1e-3))
    assert result.status == Status.NO_SOLUTION_IN_TIME
    assert math.isnan(result.lower_bound_gco2) and math.isnan(result.gap)
    assert not result.has_bound and result.placed_weight_bound is None


async def test_no_plan_leaves_bound_and_gap_unset_over_grpc(optimizer):
    stub, registry, _ = optimizer
    b_jobs = 20
    jobs = [b.job(f"j{i}", cpu=1000) for i in range(b_jobs)]
    request = b.request(jobs, [b.cluster("a", cpu=4000)], {"a": [100.0] * 24}, policy=7, time_limit_s=1e-3)
    response = await stub.Solve(request)
    assert response.status == optimizer_pb2.SOLVE_STATUS_NO_SOLUTION_IN_TIME
    assert not response.HasField("lower_bound_gco2") and not response.HasField("gap")
    assert not response.HasField("placed_weight_bound")
    assert response.placed_weight == 0 and response.unplaced_count == b_jobs
    assert math.isnan(registry.get_sample_value("caspian_optimality_gap", {"policy": "naive_milp"}))

    fits = b.request(jobs[:4], [b.cluster("a", cpu=4000)], {"a": [100.0] * 24}, time_limit_s=10.0)
    response = await stub.Solve(fits)
    assert response.HasField("lower_bound_gco2") and response.HasField("gap")
    assert response.placed_weight == 4 and response.placed_weight_bound == 4
