"""Solve over real gRPC: the cases every carbon-aware placement must get right."""

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from caspian.v1 import optimizer_pb2
from services.common.stable import stable_index
from tests.optimizer.builders import GIB, HOUR, START, cluster, job, placements_by_id, request

OPTIMAL = optimizer_pb2.SOLVE_STATUS_OPTIMAL
TIMEOUT = 30


def check_answer(response):
    """Invariants of every answer: counts, a true bound below the objective, a consistent gap."""
    assert response.placed_count + response.unplaced_count == len(response.placements)
    assert response.lower_bound_gco2 <= response.objective_gco2 + 1e-9
    if response.placed_count:
        expected = (response.objective_gco2 - response.lower_bound_gco2) / max(
            abs(response.objective_gco2), 1e-9
        )
        assert response.gap == pytest.approx(expected, abs=1e-9)
    assert response.emissions_gco2 == pytest.approx(sum(p.gco2 for p in response.placements if p.placed))
    # Each job's run in the carbon-agnostic baseline is carried; agnostic_gco2 is their sum.
    runs = [p.agnostic for p in response.placements if p.HasField("agnostic")]
    assert response.agnostic_gco2 == pytest.approx(sum(r.gco2 for r in runs), rel=1e-12, abs=1e-12)


async def test_trivially_feasible_picks_the_cleanest_cluster_and_slot(optimizer):
    stub, _, _ = optimizer
    req = request(
        [job("a")],
        [cluster("dirty"), cluster("clean")],
        {"dirty": [300.0] * 6, "clean": [100.0, 100.0, 50.0, 100.0, 100.0, 100.0]},
    )
    response = await stub.Solve(req, timeout=TIMEOUT)
    check_answer(response)
    assert response.status == OPTIMAL
    p = placements_by_id(response)["a"]
    assert (p.placed, p.cluster, p.start_slot) == (True, "clean", 2)
    assert p.start.ToDatetime().replace(tzinfo=START.tzinfo) == START.replace(hour=2)
    # 1 core x 10 W x 1 h = 10 Wh at 50 g/kWh
    assert p.energy_wh == pytest.approx(10.0)
    assert p.gco2 == pytest.approx(0.5)
    # the agnostic baseline starts at once; both clusters are idle, so the tie goes by a stable hash of the
    # job id (not to the first by name): for "a" the second, "clean", 10 Wh at 100 g/kWh
    assert stable_index("a", 2) == 1
    assert response.agnostic_gco2 == pytest.approx(1.0)
    assert (p.agnostic.cluster, p.agnostic.start_slot) == ("clean", 0)
    assert p.agnostic.gco2 == pytest.approx(1.0)
    assert response.policy == optimizer_pb2.POLICY_CASPIAN
    assert response.solver == optimizer_pb2.SOLVER_HIGHS


async def test_capacity_bound_spreads_jobs_over_slots_and_clusters(optimizer):
    stub, _, _ = optimizer
    req = request(
        [job(f"j{i}", earliest_slot=0, deadline_s=2 * HOUR) for i in range(3)],
        [cluster("clean", cpu=1000), cluster("dirty", cpu=4000)],
        {"clean": [50.0] * 4, "dirty": [400.0] * 4},
    )
    response = await stub.Solve(req, timeout=TIMEOUT)
    check_answer(response)
    assert response.status == OPTIMAL
    placed = list(placements_by_id(response).values())
    assert all(p.placed for p in placed)
    on_clean = sorted(p.start_slot for p in placed if p.cluster == "clean")
    assert on_clean == [0, 1]
    assert [p.cluster for p in placed].count("dirty") == 1
    assert response.emissions_gco2 == pytest.approx(2 * 0.5 + 4.0)


async def test_infeasible_deadline_is_reported_not_dropped(optimizer):
    stub, _, _ = optimizer
    alone = request(
        [job("late", runtime_s=2 * HOUR, earliest_slot=0, deadline_s=HOUR)],
        [cluster("a")],
        {"a": [100.0] * 4},
    )
    response = await stub.Solve(alone, timeout=TIMEOUT)
    check_answer(response)
    assert response.status == optimizer_pb2.SOLVE_STATUS_INFEASIBLE
    p = placements_by_id(response)["late"]
    assert not p.placed and p.unplaced_reason == optimizer_pb2.UNPLACED_REASON_DEADLINE and p.reason

    mixed = request(
        [job("late", runtime_s=2 * HOUR, earliest_slot=0, deadline_s=HOUR), job("fine")],
        [cluster("a")],
        {"a": [100.0] * 4},
    )
    response = await stub.Solve(mixed, timeout=TIMEOUT)
    assert response.status == OPTIMAL
    by_id = placements_by_id(response)
    assert by_id["fine"].placed and not by_id["late"].placed
    assert (response.placed_count, response.unplaced_count) == (1, 1)


async def test_gpu_job_goes_to_the_only_gpu_cluster(optimizer):
    stub, _, _ = optimizer
    req = request(
        [job("train", gpus=1), job("etl")],
        [cluster("gpu", gpus=2), cluster("cpu", gpus=0)],
        {"gpu": [400.0] * 4, "cpu": [50.0] * 4},
    )
    response = await stub.Solve(req, timeout=TIMEOUT)
    check_answer(response)
    by_id = placements_by_id(response)
    assert by_id["train"].cluster == "gpu"
    assert by_id["etl"].cluster == "cpu"
    # 1 core x 10 W + 1 GPU x 300 W for 1 h at 400 g/kWh
    assert by_id["train"].gco2 == pytest.approx(310 / 1000 * 400)

    no_gpu = request([job("train", gpus=1)], [cluster("cpu")], {"cpu": [50.0] * 4})
    response = await stub.Solve(no_gpu, timeout=TIMEOUT)
    p = placements_by_id(response)["train"]
    assert not p.placed and p.unplaced_reason == optimizer_pb2.UNPLACED_REASON_NO_ELIGIBLE_CLUSTER


async def test_required_and_excluded_clusters_win_over_carbon(optimizer):
    stub, _, _ = optimizer
    req = request(
        [
            job("pinned", required_clusters=["dirty"]),
            job("avoider", excluded_clusters=["clean"]),
            job("free"),
        ],
        [cluster("dirty"), cluster("clean")],
        {"dirty": [400.0] * 4, "clean": [50.0] * 4},
    )
    response = await stub.Solve(req, timeout=TIMEOUT)
    check_answer(response)
    by_id = placements_by_id(response)
    assert by_id["pinned"].cluster == "dirty"
    assert by_id["avoider"].cluster == "dirty"
    assert by_id["free"].cluster == "clean"


async def test_running_reservations_hold_their_capacity(optimizer):
    stub, _, _ = optimizer
    running = optimizer_pb2.Reservation(
        cluster="clean",
        resources={"cpu_millis": 2000, "memory_bytes": 2 * GIB},
        start_slot=0,
        end_slot=3,
        job_id="r",
    )
    req = request(
        [job("a", memory=GIB, earliest_slot=0, deadline_s=6 * HOUR)],
        [cluster("clean", cpu=2000), cluster("dirty")],
        {"clean": [50.0, 10.0, 50.0, 60.0, 50.0, 70.0], "dirty": [400.0] * 6},
        reservations=[running],
    )
    response = await stub.Solve(req, timeout=TIMEOUT)
    check_answer(response)
    p = placements_by_id(response)["a"]
    assert p.cluster == "clean" and p.start_slot == 4


async def test_equal_carbon_picks_the_earliest_start(optimizer):
    stub, _, _ = optimizer
    req = request(
        [job("a", earliest_slot=2), job("b", earliest_slot=3, runtime_s=1800)],
        [cluster("x"), cluster("y")],
        {"x": [200.0] * 8, "y": [200.0] * 8},
    )
    response = await stub.Solve(req, timeout=TIMEOUT)
    check_answer(response)
    by_id = placements_by_id(response)
    assert by_id["a"].start_slot == 2
    assert by_id["b"].start_slot == 3


async def test_preferred_cluster_tilts_and_migration_holds_a_plan(optimizer):
    stub, _, _ = optimizer
    forecasts = {"a": [100.0] * 4, "b": [102.0] * 4}
    preferred = request([job("j", preferred_clusters=["b"])], [cluster("a"), cluster("b")], forecasts)
    assert placements_by_id(await stub.Solve(preferred, timeout=TIMEOUT))["j"].cluster == "b"
    staying = request(
        [job("j", current_cluster="b")], [cluster("a"), cluster("b")], forecasts, migration_cost_gco2=5.0
    )
    assert placements_by_id(await stub.Solve(staying, timeout=TIMEOUT))["j"].cluster == "b"
    moving = request([job("j")], [cluster("a"), cluster("b")], forecasts)
    assert placements_by_id(await stub.Solve(moving, timeout=TIMEOUT))["j"].cluster == "a"


POLICIES = [
    optimizer_pb2.POLICY_CASPIAN,
    optimizer_pb2.POLICY_ROUND_ROBIN,
    optimizer_pb2.POLICY_LEAST_LOADED,
    optimizer_pb2.POLICY_GREEDY_CARBON,
    optimizer_pb2.POLICY_TEMPORAL_ONLY,
    optimizer_pb2.POLICY_IBM_CASPIAN,
    optimizer_pb2.POLICY_NAIVE_MILP,
    optimizer_pb2.POLICY_WAIT_AWHILE,
]


async def test_list_policies(optimizer):
    stub, _, _ = optimizer
    response = await stub.ListPolicies(optimizer_pb2.ListPoliciesRequest(), timeout=TIMEOUT)
    assert list(response.policies) == POLICIES


@pytest.mark.parametrize("policy", POLICIES, ids=optimizer_pb2.Policy.Name)
async def test_every_policy_answers_a_plan_that_fits(optimizer, policy):
    stub, _, _ = optimizer
    jobs = [
        job(f"j{i}", cpu=1000 + 500 * (i % 3), runtime_s=HOUR * (1 + i % 2), earliest_slot=i % 3)
        for i in range(9)
    ]
    req = request(
        jobs,
        [cluster("a", cpu=3000), cluster("b", cpu=2000)],
        {"a": [300, 250, 100, 80, 120, 300, 300, 300], "b": [90, 200, 300, 300, 100, 60, 300, 300]},
        policy=policy,
        solver=optimizer_pb2.SOLVER_CBC if policy == optimizer_pb2.POLICY_NAIVE_MILP else 0,
        time_limit_s=15,
    )
    response = await stub.Solve(req, timeout=TIMEOUT)
    check_answer(response)
    assert response.policy == policy
    assert response.status in (OPTIMAL, optimizer_pb2.SOLVE_STATUS_FEASIBLE)
    capacity = {"a": 3000, "b": 2000}
    used: dict[tuple[str, int], int] = {}
    by_id = {j.id: j for j in jobs}
    for p in response.placements:
        assert p.placed
        spec = by_id[p.job_id]
        slots = int(spec.runtime.seconds // HOUR)
        assert p.start_slot >= (spec.earliest_start.seconds - int(START.timestamp())) // HOUR
        assert p.start_slot + slots <= 8
        for t in range(p.start_slot, p.start_slot + slots):
            used[(p.cluster, t)] = used.get((p.cluster, t), 0) + spec.resources.cpu_millis
    assert all(amount <= capacity[c] for (c, _), amount in used.items())
    if policy == optimizer_pb2.POLICY_CASPIAN:
        assert response.emissions_gco2 <= response.agnostic_gco2
    # Whatever the policy, each job carries its run in the carbon-agnostic plan: the least-loaded policy's own.
    assert all(p.HasField("agnostic") for p in response.placements)
    if policy == optimizer_pb2.POLICY_LEAST_LOADED:
        for p in response.placements:
            assert (p.cluster, p.start_slot) == (p.agnostic.cluster, p.agnostic.start_slot)
            assert p.gco2 == pytest.approx(p.agnostic.gco2, rel=1e-12)


async def test_solve_metrics(optimizer):
    stub, registry, _ = optimizer
    await stub.Solve(request([job("a")], [cluster("x")], {"x": [100.0] * 2}), timeout=TIMEOUT)
    labels = {"policy": "caspian", "status": "optimal"}
    assert registry.get_sample_value("caspian_solves_total", labels) == 1
    assert registry.get_sample_value("caspian_solve_seconds_count", {"policy": "caspian"}) == 1
    assert registry.get_sample_value("caspian_optimality_gap", {"policy": "caspian"}) is not None
    assert registry.get_sample_value("caspian_solve_jobs_count") == 1


async def test_health_answers_while_a_solve_runs(optimizer):
    stub, _, server = optimizer
    # A naive MILP the solver cannot finish: the solve holds its time limit.
    jobs = [
        job(f"j{i}", cpu=1000 + 700 * (i % 4), runtime_s=HOUR * (1 + i % 3), earliest_slot=0)
        for i in range(20)
    ]
    forecasts = {name: [100.0 + 37 * ((t * (k + 3)) % 7) for t in range(24)] for k, name in enumerate("abc")}
    req = request(
        jobs,
        [cluster(n, cpu=3000) for n in "abc"],
        forecasts,
        policy=optimizer_pb2.POLICY_NAIVE_MILP,
        solver=optimizer_pb2.SOLVER_CBC,
        time_limit_s=3,
    )
    solving = asyncio.ensure_future(stub.Solve(req, timeout=TIMEOUT))
    health = health_pb2_grpc.HealthStub(grpc.aio.insecure_channel(server.address))
    answer = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    assert not solving.done()
    response = await solving
    check_answer(response)
    assert response.solve_wall_time.ToTimedelta().total_seconds() < 3 + 2


async def test_temporal_only_keeps_named_homes_and_spreads_the_rest_stably(optimizer):
    stub, _, _ = optimizer
    names = ["a", "b", "c"]
    jobs = [job(f"j{i}", cpu=100, runtime_s=HOUR, earliest_slot=0, deadline_s=4 * HOUR) for i in range(18)]
    jobs.append(job("homed", cpu=100, runtime_s=HOUR, earliest_slot=0, deadline_s=4 * HOUR, home_cluster="b"))
    # "a" is always cleanest: only the home keeps a job away from it.
    forecasts = {"a": [10, 10, 10, 10], "b": [300, 200, 300, 300], "c": [400, 400, 100, 400]}
    req = request(
        jobs, [cluster(n, cpu=64000) for n in names], forecasts, policy=optimizer_pb2.POLICY_TEMPORAL_ONLY
    )
    first = placements_by_id(await stub.Solve(req, timeout=TIMEOUT))
    again = placements_by_id(await stub.Solve(req, timeout=TIMEOUT))
    assert {k: p.cluster for k, p in first.items()} == {k: p.cluster for k, p in again.items()}
    assert first["homed"].cluster == "b" and first["homed"].start_slot == 1
    spread = [first[f"j{i}"].cluster for i in range(18)]
    assert all(spread.count(n) >= 3 for n in names), spread
    # Each job starts in its home's cleanest slot.
    for i in range(18):
        placed = first[f"j{i}"]
        assert placed.start_slot == forecasts[placed.cluster].index(min(forecasts[placed.cluster]))


@pytest.mark.parametrize("policy", [optimizer_pb2.POLICY_CASPIAN, optimizer_pb2.POLICY_TEMPORAL_ONLY])
async def test_risk_aversion_shuns_an_uncertain_slot_and_reports_the_forecast_itself(optimizer, policy):
    stub, _, _ = optimizer
    # Slot 3 looks 10% cleaner than slot 0, but its forecast may err by 30%.
    req = request(
        [job("j", cpu=1000, runtime_s=HOUR, earliest_slot=0, deadline_s=4 * HOUR, home_cluster="a")],
        [cluster("a")],
        {"a": [100.0, 300.0, 300.0, 90.0]},
        policy=policy,
    )
    neutral = placements_by_id(await stub.Solve(req, timeout=TIMEOUT))["j"]
    assert neutral.start_slot == 3
    req.forecasts[0].relative_spread.extend([0.0, 0.1, 0.2, 0.3])
    assert placements_by_id(await stub.Solve(req, timeout=TIMEOUT))["j"].start_slot == 3  # risk_aversion 0
    req.options.risk_aversion = 1.0
    averse = placements_by_id(await stub.Solve(req, timeout=TIMEOUT))["j"]
    assert averse.start_slot == 0
    # 1 core x 10 W x 1 h at the forecast's 100 g/kWh, not the risk-weighted figure.
    assert averse.gco2 == pytest.approx(10.0 / 1000 * 100.0)
