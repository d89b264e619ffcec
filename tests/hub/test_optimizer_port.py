"""The optimizer port in domain types: the gRPC adapter's mapping is the exact inverse of the optimizer
servicer's, and every enum the hub mirrors matches the contract by name."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from caspian.v1 import optimizer_pb2
from services.common.energy import Power
from services.hub.optimizer_client import (
    enum_member,
    enum_number,
    policy_number,
    solve_request,
    solve_result,
    status_number,
)
from services.hub.settings import POLICIES
from services.optimizer.problem import (
    AgnosticRun,
    Cluster,
    Forecast,
    Grid,
    Interruptible,
    Job,
    Options,
    Placement,
    Policy,
    Problem,
    Reservation,
    Resources,
    Result,
    Segment,
    Solver,
    Status,
    UnplacedReason,
)
from services.optimizer.server import options_from_proto, problem_from_proto, response_from_result
from services.optimizer.settings import OptimizerSettings

START = datetime(2026, 6, 1, tzinfo=UTC)

CONTRACT = [
    (optimizer_pb2.Policy, "POLICY_", Policy),
    (optimizer_pb2.SolveStatus, "SOLVE_STATUS_", Status),
    (optimizer_pb2.UnplacedReason, "UNPLACED_REASON_", UnplacedReason),
    (optimizer_pb2.Solver, "SOLVER_", Solver),
]


@pytest.mark.parametrize(("contract", "prefix", "domain"), CONTRACT, ids=[d.__name__ for _, _, d in CONTRACT])
def test_every_domain_enum_member_is_a_contract_value_and_back(contract, prefix, domain):
    numbers = {enum_number(contract, prefix, member) for member in domain}
    assert numbers == {v for v in contract.values() if v != 0}
    for member in domain:
        assert enum_member(contract, prefix, domain, enum_number(contract, prefix, member)) is member
    assert enum_member(contract, prefix, domain, 0) is None


def test_policy_names_are_the_optimizers():
    assert POLICIES == tuple(p.value for p in Policy)
    assert policy_number(None) == optimizer_pb2.POLICY_UNSPECIFIED
    assert status_number(None) == optimizer_pb2.SOLVE_STATUS_UNSPECIFIED


def _problem() -> Problem:
    return Problem(
        jobs=(
            Job(
                id="a",
                resources=Resources(2000, 4 << 30, 1),
                runtime=timedelta(seconds=5400),
                earliest_start=START + timedelta(seconds=1800),
                deadline=START + timedelta(hours=9),
                required_clusters=("east", "west"),
                preferred_clusters=("west",),
                excluded_clusters=("north",),
                priority=7,
                current_cluster="east",
                home_cluster="west",
                previous_cluster="east",
                previous_start=START + timedelta(seconds=2700),
            ),
            Job(id="b", resources=Resources(1000, 1 << 30), runtime=timedelta(seconds=900)),
            # An interruptible job re-planned from its progress: its remaining work, pauses taken, a resume.
            Job(
                id="c",
                resources=Resources(1000, 1 << 30),
                runtime=timedelta(hours=1),
                deadline=START + timedelta(hours=2),
                interruptible=Interruptible(timedelta(seconds=300), timedelta(seconds=900), max_pauses=3),
                remaining_runtime=timedelta(seconds=1800),
                pauses_taken=1,
                needs_resume=True,
            ),
        ),
        clusters=(
            Cluster("east", "KR", Resources(16000, 64 << 30, 2), Power(watts_per_core=10.0, pue=1.2)),
            Cluster("west", "JP-TK", Resources(8000, 32 << 30), Power(idle_watts=50, peak_watts=400)),
            Cluster("north", "CN", Resources(4000, 16 << 30)),
        ),
        grid=Grid(START, timedelta(seconds=900), 8),
        forecasts=(
            Forecast("east", tuple(float(400 + i) for i in range(8)), tuple(0.1 for _ in range(8))),
            Forecast("west", tuple(float(300 - i) for i in range(8))),
            Forecast("north", tuple(600.0 for _ in range(8))),
        ),
        reservations=(Reservation("east", Resources(1000, 1 << 30), 0, 3, "running"),),
    )


def test_a_problem_survives_the_contract_both_ways():
    problem = _problem()
    options = Options(policy=Policy.GREEDY_CARBON, time_limit_s=12.5, mip_gap=0.02, risk_aversion=0.5)
    request = solve_request(problem, options)
    assert problem_from_proto(request) == problem
    back = options_from_proto(request.options, OptimizerSettings())
    assert (back.policy, back.time_limit_s, back.mip_gap, back.risk_aversion) == (
        Policy.GREEDY_CARBON,
        12.5,
        0.02,
        0.5,
    )
    # The hub leaves the solver to the service.
    assert request.options.solver == optimizer_pb2.SOLVER_UNSPECIFIED


def test_a_result_survives_the_contract_both_ways():
    result = Result(
        status=Status.FEASIBLE,
        placements=(
            Placement(
                "a",
                True,
                "west",
                2,
                START + timedelta(seconds=1800),
                12.5,
                3.25,
                late=True,
                agnostic=AgnosticRun("east", 0, 4.0),
            ),
            Placement(
                "b",
                False,
                reason=UnplacedReason.CAPACITY,
                detail="no room",
                agnostic=AgnosticRun("west", 3, 0.5),
            ),
            Placement("c", False),
            Placement(
                "d",
                True,
                "east",
                0,
                START,
                20.0,
                5.0,
                segments=(
                    Segment(0, 2, START, START + timedelta(seconds=1800), 10.0, 2.0),
                    Segment(4, 6, START + timedelta(hours=1), START + timedelta(seconds=5400), 10.0, 3.0),
                ),
            ),
        ),
        emissions_gco2=3.25,
        objective_gco2=3.0,
        lower_bound_gco2=2.5,
        gap=0.1,
        wall_seconds=0.25,
        agnostic_gco2=4.0,
        policy=Policy.CASPIAN,
        solver=Solver.CBC,
        message="ok",
    )
    assert solve_result(response_from_result(result), Options()) == result
