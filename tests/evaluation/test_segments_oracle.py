"""The segment oracle on tiny instances: the time-indexed MILP (segments_oracle.py), the optimizer's model the
oracle uses (oracle.py), and brute force over every run pattern all find the same optimum."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from bench.evaluation.segments_oracle import job_specs, pattern_price, solve_time_indexed
from services.common.energy import GIB, Power
from services.optimizer import problem as domain
from services.optimizer.compiled import compile_problem
from services.optimizer.segments import slot_prices, slot_runs
from services.optimizer.solve import solve

START = datetime(2023, 6, 1, tzinfo=UTC)
SLOT = timedelta(minutes=15)
POWER = Power(watts_per_core=12.0, watts_per_gib=0.375, pue=1.2)
OPTIONS = domain.Options(
    policy=domain.Policy.CASPIAN,
    time_limit_s=30.0,
    migration_cost_gco2=0.0,
    lateness_gco2_per_slot=0.0,
    preferred_discount=0.0,
    mip_gap=1e-9,
)


def _problem(intensities: dict[str, list[float]], jobs: list[domain.Job], cpus: int = 4) -> domain.Problem:
    slots = len(next(iter(intensities.values())))
    clusters = tuple(
        domain.Cluster(name, name.upper(), domain.Resources(cpus * 1000, cpus * 4 * GIB, 0), POWER)
        for name in intensities
    )
    forecasts = tuple(domain.Forecast(name, tuple(values)) for name, values in intensities.items())
    return domain.Problem(tuple(jobs), clusters, domain.Grid(START, SLOT, slots), forecasts)


def _job(id_: str, slots: float, cpus: int, deadline_slots: int, **rule) -> domain.Job:
    return domain.Job(
        id=id_,
        resources=domain.Resources(cpus * 1000, cpus * 4 * GIB, 0),
        runtime=slots * SLOT,
        earliest_start=START,
        deadline=START + deadline_slots * SLOT,
        interruptible=domain.Interruptible(
            resume_overhead=rule.get("overhead", timedelta(0)),
            min_segment=rule.get("min_segment", timedelta(0)),
            max_pauses=rule.get("max_pauses"),
        )
        if rule
        else None,
    )


def brute_force(problem: domain.Problem) -> float:
    """Least price over every combination of every job's every valid run pattern, capacity checked."""
    cp = compile_problem(problem, OPTIONS)
    per_job = []
    for j, spec in enumerate(job_specs(cp)):
        options = []
        window = range(max(0, spec.first), min(spec.end, cp.slots))
        for c in range(cp.clusters):
            price = slot_prices(cp, j, c)
            for bits in itertools.product((0, 1), repeat=len(window)):
                ran = [t for t, b in zip(window, bits, strict=True) if b]
                if not ran:
                    continue
                segments = slot_runs(ran)
                k = len(segments)
                if spec.max_segments is not None and k > spec.max_segments:
                    continue
                if len(ran) != spec.run_slots(k) or any(b - a < spec.min_len for a, b in segments):
                    continue
                options.append((pattern_price(price, segments, spec.last_frac), c, set(ran)))
        per_job.append(options)
    best = float("inf")
    for combo in itertools.product(*per_job):
        for c in range(cp.clusters):
            for t in range(cp.slots):
                if (
                    sum(cp.req[j, 0] for j, (_, cc, ran) in enumerate(combo) if cc == c and t in ran)
                    > cp.free[c, t, 0]
                ):
                    break
            else:
                continue
            break
        else:
            best = min(best, sum(price for price, _, _ in combo))
    return best


def optimizer_price(problem: domain.Problem) -> float:
    """The optimizer's plan (what the oracle solves with), priced by the same rule."""
    result = solve(problem, OPTIONS)
    cp = compile_problem(problem, OPTIONS)
    specs = job_specs(cp)
    clusters = [c.name for c in problem.clusters]
    total = 0.0
    for placement in result.placements:
        assert placement.placed, placement
        j = next(i for i, job in enumerate(problem.jobs) if job.id == placement.job_id)
        c = clusters.index(placement.cluster)
        segments = [(s.start_slot, s.end_slot) for s in placement.segments] or [
            (placement.start_slot, placement.start_slot + int(cp.duration[j]))
        ]
        total += pattern_price(slot_prices(cp, j, c), segments, specs[j].last_frac)
    return total


# A dirty peak in slots 4-6 on both clusters, "b" a little cleaner outside it.
PEAK = {
    "a": [100, 100, 100, 110, 900, 900, 900, 120, 100, 100, 100],
    "b": [95, 120, 105, 100, 950, 880, 990, 100, 90, 130, 100],
}


@pytest.mark.parametrize(
    "jobs",
    [
        # One interruptible job that must pause through the peak to avoid it.
        [_job("long", 6, 2, 11, overhead=timedelta(minutes=5), min_segment=timedelta(minutes=30))],
        # The same with a partial last slot, beside a plain job on a cluster only big enough for one of them.
        [
            _job("long", 5.5, 3, 11, overhead=timedelta(minutes=5), min_segment=timedelta(minutes=30)),
            _job("plain", 3, 3, 11),
        ],
        # A pause limit of zero: one piece, whatever it costs.
        [_job("fixed", 6, 2, 11, overhead=timedelta(minutes=5), max_pauses=0)],
        # A minimum segment of an hour: no segment fits before the peak with its overhead.
        [_job("coarse", 4, 2, 11, overhead=timedelta(minutes=15), min_segment=timedelta(hours=1))],
    ],
    ids=["pause-through-peak", "two-jobs-capacity", "max-pauses-0", "min-segment"],
)
def test_time_indexed_milp_and_optimizer_equal_brute_force(jobs):
    problem = _problem(PEAK, jobs)
    exact = brute_force(problem)
    milp = solve_time_indexed(problem, OPTIONS)
    assert milp.status == "optimal"
    assert milp.objective_g == pytest.approx(exact, rel=1e-6)
    assert optimizer_price(problem) == pytest.approx(exact, rel=1e-6)


def test_the_interruptible_job_pauses_through_the_peak_and_respects_its_rule():
    problem = _problem(
        PEAK, [_job("long", 6, 2, 11, overhead=timedelta(minutes=5), min_segment=timedelta(minutes=30))]
    )
    milp = solve_time_indexed(problem, OPTIONS)
    cluster, segments = milp.plans["long"]
    assert len(segments) == 2
    assert all(not (a <= 4 < b or a <= 5 < b or a <= 6 < b) for a, b in segments), segments
    # Six useful slots plus one overhead slot for the resume; every segment at least two slots.
    assert sum(b - a for a, b in segments) == 7
    assert all(b - a >= 2 for a, b in segments)
    one_piece = _problem(PEAK, [_job("long", 6, 2, 11)])
    assert milp.objective_g < solve_time_indexed(one_piece, OPTIONS).objective_g


def test_the_oracle_of_a_small_evaluation_instance_equals_the_time_indexed_milp():
    """The evaluation's segment oracle (the optimizer's model on oracle_problem) and the independent MILP
    find the same optimum on a real (small) instance: every job interruptible, real traces; one job (8 h)
    pauses in both."""
    from bench.evaluation.oracle import ORACLE_MIP_GAP, oracle_problem, solve_oracle
    from bench.evaluation.workload import Setting, build_instance

    instance = build_instance(
        Setting("default", "slack3", 0.5, 1.0), 0, jobs=10, span_hours=24, max_runtime_s=12 * 3600
    )
    assert any(j.interruptible for j in instance.jobs)
    oracle = solve_oracle(instance, time_limit_s=60)
    options = domain.Options(
        policy=domain.Policy.CASPIAN,
        time_limit_s=60,
        migration_cost_gco2=0.0,
        lateness_gco2_per_slot=0.0,
        preferred_discount=0.0,
        mip_gap=ORACLE_MIP_GAP,
    )
    milp = solve_time_indexed(oracle_problem(instance), options, time_limit_s=120)
    assert milp.status == "optimal"
    assert oracle.objective_g == pytest.approx(milp.objective_g, rel=2 * ORACLE_MIP_GAP)
    assert oracle.bound_g <= milp.objective_g * (1 + 1e-9)
    assert sum(len(j.segments) > 1 for j in oracle.jobs.values()) >= 1
    assert sum(len(segments) > 1 for _, segments in milp.plans.values()) >= 1
