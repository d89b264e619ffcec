"""On tiny random instances the CASPIAN answer equals the brute-force optimum.

The brute force enumerates every assignment (each job: one allowed (cluster, start slot) or left out), keeps
those within capacity, and takes the best by (priority-weighted jobs placed, then cost). Costs are computed
here from the grid definition, independently of the optimizer's arrays.
"""

import itertools
import math
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.common.energy import Power, job_watts
from services.optimizer.problem import (
    Cluster,
    Forecast,
    Grid,
    Job,
    Options,
    Problem,
    Reservation,
    Resources,
    Status,
)
from services.optimizer.solve import solve

START = datetime(2023, 3, 1, tzinfo=UTC)
SLOT = 3600.0


@st.composite
def tiny_problems(draw):
    n_clusters = draw(st.integers(1, 2))
    slots = draw(st.integers(2, 5))
    clusters = []
    for c in range(n_clusters):
        clusters.append(
            Cluster(
                name=f"c{c}",
                zone=f"Z{c}",
                capacity=Resources(
                    cpu_millis=draw(st.sampled_from([1000, 2000, 3000])), gpus=draw(st.sampled_from([0, 1]))
                ),
                power=Power(
                    watts_per_core=draw(st.sampled_from([5.0, 10.0, 15.0])),
                    watts_per_gpu=200.0,
                    pue=draw(st.sampled_from([1.0, 1.5])),
                ),
            )
        )
    forecasts = tuple(
        Forecast(
            c.name,
            tuple(float(v) for v in draw(st.lists(st.integers(0, 500), min_size=slots, max_size=slots))),
        )
        for c in clusters
    )
    names = [c.name for c in clusters]
    jobs = []
    for j in range(draw(st.integers(1, 4))):
        runtime = draw(st.sampled_from([1800, 3600, 5400, 7200, 9000]))
        earliest = draw(st.sampled_from([None, 0, 1200, 3600, 5000]))
        deadline = None
        if draw(st.booleans()):
            deadline = (earliest or 0) + runtime + draw(st.sampled_from([-600, 0, 1800, 3600, 10800]))
        required = tuple(draw(st.lists(st.sampled_from(names), max_size=1, unique=True)))
        jobs.append(
            Job(
                id=f"j{j}",
                resources=Resources(
                    cpu_millis=draw(st.sampled_from([500, 1000, 2000])), gpus=draw(st.sampled_from([0, 0, 1]))
                ),
                runtime=timedelta(seconds=runtime),
                earliest_start=None if earliest is None else START + timedelta(seconds=earliest),
                deadline=None
                if deadline is None
                else START + timedelta(seconds=max(deadline, earliest or 0)),
                required_clusters=required,
                preferred_clusters=tuple(draw(st.lists(st.sampled_from(names), max_size=1, unique=True))),
                current_cluster=draw(st.sampled_from(["", *names])),
                priority=draw(st.integers(0, 2)),
            )
        )
    reservations = ()
    if draw(st.booleans()):
        first = draw(st.integers(0, slots - 1))
        reservations = (
            Reservation(
                draw(st.sampled_from(names)),
                Resources(cpu_millis=1000),
                first,
                draw(st.integers(first, slots)),
            ),
        )
    options = Options(
        mip_gap=0.0,
        time_limit_s=20.0,
        migration_cost_gco2=draw(st.sampled_from([0.0, 0.3])),
        lateness_gco2_per_slot=draw(st.sampled_from([0.001, 0.05])),
        preferred_discount=draw(st.sampled_from([0.0, 0.1])),
    )
    grid = Grid(START, timedelta(seconds=SLOT), slots)
    return Problem(tuple(jobs), tuple(clusters), grid, forecasts, reservations), options


def options_of(problem: Problem, job: Job, opts: Options):
    """Every allowed (cluster index, start slot, cost) of a job, from first principles."""
    out = []
    runtime = job.runtime.total_seconds()
    earliest = (job.earliest_start - START).total_seconds() if job.earliest_start else 0.0
    earliest_slot = max(0, math.ceil(earliest / SLOT - 1e-9))
    need = job.resources
    for c, cluster in enumerate(problem.clusters):
        if job.required_clusters and cluster.name not in job.required_clusters:
            continue
        cap = cluster.capacity
        if need.cpu_millis > cap.cpu_millis or need.gpus > cap.gpus or need.memory_bytes > cap.memory_bytes:
            continue
        watts = job_watts(need.cpu_millis, need.memory_bytes, need.gpus, cluster.power, cap.cpu_millis)
        intensity = problem.forecasts[c].gco2_per_kwh
        for s in range(problem.grid.slots):
            begin = s * SLOT
            if begin < earliest or begin + runtime > problem.grid.slots * SLOT:
                continue
            if job.deadline and START + timedelta(seconds=begin + runtime) > job.deadline:
                continue
            grams, t, left = 0.0, s, runtime
            while left > 1e-9:
                piece = min(SLOT, left)
                grams += watts / 1000 * piece / 3600 * intensity[t]
                left -= piece
                t += 1
            if cluster.name in job.preferred_clusters:
                grams *= 1 - opts.preferred_discount
            if job.current_cluster and job.current_cluster != cluster.name:
                grams += opts.migration_cost_gco2
            grams += opts.lateness_gco2_per_slot * (s - earliest_slot)
            out.append((c, s, grams))
    return out


def brute_force(problem: Problem, opts: Options) -> tuple[int, float]:
    """(best priority-weighted count placed, least cost among plans placing that many)."""
    choices = [[None, *options_of(problem, job, opts)] for job in problem.jobs]
    weights = [1 + min(max(job.priority, 0), 9) for job in problem.jobs]
    T = problem.grid.slots
    best = (-1, math.inf)
    for combo in itertools.product(*choices):
        used = {}
        ok = True
        for r in problem.reservations:
            c = [cl.name for cl in problem.clusters].index(r.cluster)
            for t in range(r.start_slot, min(r.end_slot, T)):
                used[(c, t)] = [
                    a + b
                    for a, b in zip(
                        used.get((c, t), [0, 0]), [r.resources.cpu_millis, r.resources.gpus], strict=True
                    )
                ]
        for job, pick in zip(problem.jobs, combo, strict=True):
            if pick is None:
                continue
            c, s, _ = pick
            d = math.ceil(job.runtime.total_seconds() / SLOT - 1e-9)
            for t in range(s, s + d):
                cell = used.get((c, t), [0, 0])
                cell = [cell[0] + job.resources.cpu_millis, cell[1] + job.resources.gpus]
                cap = problem.clusters[c].capacity
                if cell[0] > cap.cpu_millis or cell[1] > cap.gpus:
                    ok = False
                used[(c, t)] = cell
        if not ok:
            continue
        weight = sum(w for w, pick in zip(weights, combo, strict=True) if pick is not None)
        cost = sum(pick[2] for pick in combo if pick is not None)
        if weight > best[0] or (weight == best[0] and cost < best[1] - 1e-12):
            best = (weight, cost)
    return best


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tiny_problems())
def test_caspian_equals_brute_force(case):
    problem, options = case
    result = solve(problem, options)
    weight, cost = brute_force(problem, options)
    weights = {job.id: 1 + min(max(job.priority, 0), 9) for job in problem.jobs}
    placed_weight = sum(weights[p.job_id] for p in result.placements if p.placed)
    assert placed_weight == weight
    if weight > 0:
        assert result.status == Status.OPTIMAL
        assert math.isclose(result.objective_gco2, cost, rel_tol=1e-7, abs_tol=1e-7)
        assert result.lower_bound_gco2 <= result.objective_gco2 + 1e-9
    else:
        assert result.status == Status.INFEASIBLE


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tiny_problems(), st.integers(0, 2**32 - 1))
def test_lagrangian_bound_is_below_the_optimum_for_any_prices(case, seed):
    """Why the reported bound is true: L(lam) <= optimum for every lam >= 0, not only the LP's duals, on
    every capacity row, the rounded ones too."""
    import numpy as np

    from services.optimizer.compiled import compile_problem
    from services.optimizer.pricing import LagrangianPrices

    problem, options = case
    cp = compile_problem(problem, options)
    if cp.classes == 0:
        return
    weight, cost = brute_force(problem, options)
    placeable_weight = sum(
        1 + min(max(job.priority, 0), 9) for j, job in enumerate(problem.jobs) if cp.job_class[j] >= 0
    )
    optimum = cost + cp.penalty_unit * (placeable_weight - weight)
    prices = LagrangianPrices(cp)
    rng = np.random.default_rng(seed)
    scale = rng.choice([1e-6, 1e-3, 1.0]) / np.maximum(prices.capacity, 1.0)
    for _ in range(5):
        shape = prices.free.shape  # every capacity row, the rounded ones too (capacity_rows.py)
        lam = rng.exponential(1.0, size=shape) * scale[:, None, :] * (rng.random(shape) < 0.5)
        bound, _ = prices.bound(lam, prices.price(lam))
        assert bound <= optimum + 1e-6 * max(1.0, abs(optimum))
