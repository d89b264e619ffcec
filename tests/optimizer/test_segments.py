"""Interruptible jobs: segments through dirty hours, the segment rules, exactness of the pattern programme
against brute force, and plain jobs never split."""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from caspian.v1 import optimizer_pb2
from services.common.timeconv import to_duration
from services.optimizer import segments as segments_module
from services.optimizer.compiled import compile_problem
from services.optimizer.plan import Plan
from services.optimizer.problem import (
    Cluster,
    Forecast,
    Grid,
    Interruptible,
    Job,
    Options,
    Policy,
    Problem,
    Resources,
    Status,
)
from services.optimizer.segments import (
    SegmentSpec,
    cheapest_pattern,
    pattern_floor,
    segment_spec,
    segments_cost,
)
from services.optimizer.solve import solve
from services.optimizer.verify import verify_plan
from tests.optimizer import builders

TIMEOUT = 30

START = datetime(2023, 6, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _problem(jobs, forecasts: dict[str, list[float]], cpu: int = 4000) -> Problem:
    slots = len(next(iter(forecasts.values())))
    return Problem(
        jobs=tuple(jobs),
        clusters=tuple(Cluster(name, name.upper(), Resources(cpu_millis=cpu)) for name in forecasts),
        grid=Grid(START, HOUR, slots),
        forecasts=tuple(Forecast(name, tuple(values)) for name, values in forecasts.items()),
    )


def _job(job_id: str, hours: int, deadline_h: int, rule: Interruptible | None = None, **fields) -> Job:
    return Job(
        id=job_id,
        resources=Resources(cpu_millis=1000),
        runtime=hours * HOUR,
        earliest_start=START,
        deadline=START + deadline_h * HOUR,
        interruptible=rule,
        **fields,
    )


# Clean, clean, a dirty evening peak of three hours, clean again.
PEAK = [100.0, 100.0, 900.0, 900.0, 900.0, 100.0, 100.0, 500.0]


def _slots(placement) -> list[tuple[int, int]]:
    return [(s.start_slot, s.end_slot) for s in placement.segments]


def test_an_interruptible_job_pauses_through_the_dirty_peak():
    rule = Interruptible(resume_overhead=timedelta(0), min_segment=HOUR)
    problem = _problem([_job("train", 4, 8, rule), _job("plain", 4, 8)], {"a": PEAK})
    result = solve(problem, Options(policy=Policy.CASPIAN, lateness_gco2_per_slot=0.0))
    by_id = {p.job_id: p for p in result.placements}
    assert _slots(by_id["train"]) == [(0, 2), (5, 7)]
    # Four clean hours at 100 g/kWh, and the segments' figures add up to the placement's.
    assert by_id["train"].gco2 == pytest.approx(by_id["train"].energy_wh / 1000 * 100)
    assert by_id["train"].gco2 == pytest.approx(sum(s.gco2 for s in by_id["train"].segments))
    # The plain job has no choice but one piece through part of the peak.
    assert by_id["plain"].placed and by_id["plain"].segments == ()
    assert result.status == Status.OPTIMAL and result.gap <= 0.01
    assert result.lower_bound_gco2 <= result.objective_gco2 + 1e-9


def test_the_last_segment_ends_where_the_work_completes():
    # 3.5 hours of work in hourly slots, split around the peak: the earlier segment ends on its slot boundary
    # (where the hub suspends the job), the last half-way through its last slot, which is charged at half.
    rule = Interruptible(resume_overhead=timedelta(0), min_segment=HOUR)
    job = replace(_job("train", 4, 8, rule), runtime=timedelta(hours=3.5))
    result = solve(_problem([job], {"a": PEAK}), Options(policy=Policy.CASPIAN, lateness_gco2_per_slot=0.0))
    (placement,) = result.placements
    assert _slots(placement) == [(0, 2), (5, 7)]
    first, last = placement.segments
    assert first.end == START + 2 * HOUR
    assert last.end == START + timedelta(hours=6.5)
    assert placement.gco2 == pytest.approx(placement.energy_wh / 1000 * 100)
    assert placement.energy_wh == pytest.approx(3.5 * last.energy_wh / 1.5)


def test_overhead_and_min_segment_are_respected():
    # Clean pairs between dirty hours: 3 hours of work with a one-hour resume overhead run as 2 useful slots,
    # then 1 overhead + 1 useful: 4 clean run slots (400) beat any 3 in one piece through a dirty hour (1100).
    forecast = [100.0, 100.0, 900.0, 100.0, 100.0, 900.0, 900.0]
    rule = Interruptible(resume_overhead=HOUR, min_segment=2 * HOUR)
    result = solve(_problem([_job("j", 3, 7, rule)], {"a": forecast}), Options(lateness_gco2_per_slot=0.0))
    (placement,) = result.placements
    segments = _slots(placement)
    assert all(b - a >= 2 for a, b in segments)
    ran = sum(b - a for a, b in segments)
    assert ran == 3 + (len(segments) - 1)
    assert segments == [(0, 2), (3, 5)]
    # min_segment of three hours forbids the split (two segments of 3+ slots cannot add up to 4).
    longer = Interruptible(resume_overhead=HOUR, min_segment=3 * HOUR)
    result = solve(_problem([_job("j", 3, 7, longer)], {"a": forecast}), Options(lateness_gco2_per_slot=0.0))
    (placement,) = result.placements
    assert len(placement.segments) == 1 and sum(b - a for a, b in _slots(placement)) == 3


def test_max_pauses_and_needs_resume():
    rule = Interruptible(resume_overhead=HOUR, max_pauses=1)
    forecast = [100.0, 900.0, 100.0, 900.0, 100.0, 900.0, 100.0, 100.0]
    job = _job("j", 4, 8, rule, remaining_runtime=3 * HOUR, pauses_taken=1, needs_resume=True)
    result = solve(_problem([job], {"a": forecast}), Options(lateness_gco2_per_slot=0.0))
    (placement,) = result.placements
    # No pause left: one segment of 3 + 1 (the resume's overhead) slots.
    assert len(placement.segments) == 1
    assert sum(b - a for a, b in _slots(placement)) == 4


def test_a_plain_job_is_never_split():
    jobs = [_job(f"p{i}", 3, 8) for i in range(3)]
    result = solve(_problem(jobs, {"a": PEAK, "b": list(reversed(PEAK))}, cpu=2000), Options())
    for placement in result.placements:
        assert placement.placed and placement.segments == ()


def _brute_force(spec: SegmentSpec, price: np.ndarray, usable: np.ndarray, hold: np.ndarray) -> float:
    """Every subset of the window's slots as run slots, split into maximal runs: the least price of a valid one."""
    best = math.inf
    window = list(range(spec.first, spec.end))
    for mask in itertools.product((0, 1), repeat=len(window)):
        ran = [t for t, on in zip(window, mask, strict=True) if on]
        if not ran or not all(usable[t] for t in ran):
            continue
        segments: list[list[int]] = []
        for t in ran:
            if segments and segments[-1][1] == t:
                segments[-1][1] = t + 1
            else:
                segments.append([t, t + 1])
        k = len(segments)
        if spec.max_segments is not None and k > spec.max_segments:
            continue
        if any(b - a < spec.min_len for a, b in segments) or len(ran) != spec.run_slots(k):
            continue
        # The last run slot completes the work and is charged at its share in use.
        held = float(hold[ran].sum())
        best = min(best, float(price[ran].sum()) - (1.0 - spec.last_frac) * float(price[ran[-1]]) + held)
    return best


@pytest.fixture(params=["loop", "numpy"])
def programme(request, monkeypatch):
    """Either implementation of the pattern programme, whatever the instance's size."""
    monkeypatch.setattr(segments_module, "NUMPY_FROM_STEPS", 0 if request.param == "numpy" else 10**12)
    return request.param


@pytest.mark.parametrize("seed", range(40))
def test_the_pattern_programme_matches_brute_force(seed, programme):
    rng = random.Random(seed)
    slots = rng.randint(4, 11)
    work = rng.randint(1, 5)
    overhead = rng.randint(0, 2)
    spec = SegmentSpec(
        work=work,
        overhead=overhead,
        first_overhead=overhead if rng.random() < 0.3 else 0,
        min_len=min(rng.randint(1, 3), work),
        max_segments=rng.choice([None, 1, 2, 3]),
        first=rng.randint(0, 2),
        end=slots - rng.randint(0, 1),
        last_frac=rng.choice([1.0, 0.25, 0.5]),
    )
    price = np.array([rng.choice([1.0, 2.0, 5.0, 9.0]) + rng.random() for _ in range(slots)])
    usable = np.array([rng.random() > 0.15 for _ in range(slots)])
    # Half the cases with a price per slot held (capacity multipliers), charged in full even in the last slot.
    hold = np.array([rng.random() * 3 if seed % 2 else 0.0 for _ in range(slots)])
    found = cheapest_pattern(spec, price, usable, hold)
    expected = _brute_force(spec, price, usable, hold)
    if math.isinf(expected):
        assert found is None
        return
    assert found is not None
    cost, segments = found
    # The cheap floor that lets a cluster be skipped never exceeds the least price.
    assert pattern_floor(spec, price + hold, usable) <= cost + 1e-9
    assert cost == pytest.approx(expected)
    ran = [t for a, b in segments for t in range(a, b)]
    held = float(hold[ran].sum())
    assert float(price[ran].sum()) - (1.0 - spec.last_frac) * float(price[ran[-1]]) + held == pytest.approx(
        cost
    )
    assert all(usable[t] for t in ran)


@pytest.mark.parametrize("seed", range(30))
def test_the_numpy_programme_equals_the_loop_on_larger_instances(seed, monkeypatch):
    # Brute force cannot reach the sizes where the numpy programme is chosen; the loop (checked against brute
    # force above) can: both must find the same least cost, and the numpy one a pattern that costs it.
    rng = np.random.default_rng(seed)
    work = int(rng.integers(8, 48))
    overhead = int(rng.integers(0, 3))
    slots = int(rng.integers(work + 8, 160))
    spec = SegmentSpec(
        work=work,
        overhead=overhead,
        first_overhead=overhead if rng.random() < 0.3 else 0,
        min_len=int(rng.integers(1, 6)),
        max_segments=None if rng.random() < 0.6 else int(rng.integers(1, 5)),
        first=int(rng.integers(0, 4)),
        end=slots - int(rng.integers(0, 3)),
        last_frac=float(rng.choice([1.0, 0.3])),
    )
    price = rng.random(slots) * 50
    price[rng.integers(0, slots, 3)] = math.inf
    usable = rng.random(slots) > 0.1
    hold = rng.random(slots) if seed % 2 else None
    answers = {}
    for name, threshold in (("loop", 10**12), ("numpy", 0)):
        monkeypatch.setattr(segments_module, "NUMPY_FROM_STEPS", threshold)
        answers[name] = cheapest_pattern(spec, price, usable, hold)
    if answers["loop"] is None:
        assert answers["numpy"] is None
        return
    assert answers["numpy"] is not None
    cost, segments = answers["numpy"]
    assert cost == pytest.approx(answers["loop"][0], rel=1e-9)
    ran = [t for a, b in segments for t in range(a, b)]
    held = 0.0 if hold is None else float(hold[ran].sum())
    assert float(price[ran].sum()) - (1.0 - spec.last_frac) * float(price[ran[-1]]) + held == pytest.approx(
        cost
    )
    assert all(usable[t] for t in ran) and all(b - a >= spec.min_len for a, b in segments)
    assert spec.max_segments is None or len(segments) <= spec.max_segments


def test_the_verifier_refuses_broken_segments():
    rule = Interruptible(resume_overhead=HOUR, min_segment=2 * HOUR)
    problem = _problem([_job("j", 3, 8, rule), _job("p", 2, 8)], {"a": PEAK})
    cp = compile_problem(problem, Options())
    assert segment_spec(cp, 1) is None
    plan = Plan.empty(cp.n)
    plan.place_segments(0, 0, [(0, 2), (5, 7)])  # 2 useful + 1 overhead + 1 useful = 3 of work: valid
    plan.place(1, 0, 2)
    assert verify_plan(cp, plan) == []
    cases = {
        "shorter than the minimum": [(0, 1), (3, 6)],
        "not the 4 its work": [(0, 2), (5, 8)],
        "overlap": [(0, 2), (1, 3)],
        "after its deadline": [(3, 5), (7, 9)],
    }
    for words, segments in cases.items():
        plan.place_segments(0, 0, segments)
        assert any(words in v.what for v in verify_plan(cp, plan)), words
    plan.place_segments(0, 0, [(0, 2), (5, 7)])
    plan.place_segments(1, 0, [(0, 1), (5, 6)])  # a plain job in segments
    assert any("not interruptible" in v.what for v in verify_plan(cp, plan))


def test_wait_awhile_runs_in_the_home_clusters_cleanest_slots():
    rule = Interruptible(min_segment=HOUR)
    jobs = [_job("train", 4, 8, rule, home_cluster="a"), _job("plain", 2, 8, home_cluster="a")]
    result = solve(_problem(jobs, {"a": PEAK, "b": [1.0] * 8}), Options(policy=Policy.WAIT_AWHILE))
    by_id = {p.job_id: p for p in result.placements}
    assert by_id["train"].cluster == "a" and _slots(by_id["train"]) == [(0, 2), (5, 7)]
    assert by_id["plain"].cluster == "a" and by_id["plain"].segments == ()
    assert result.status == Status.FEASIBLE


async def test_segments_over_grpc(optimizer):
    """The proto mapping both ways: SolveJob.interruptible in, Placement.segments out; bad fields named."""
    stub, _, _ = optimizer
    peak = [100.0, 100.0, 900.0, 900.0, 900.0, 100.0, 100.0, 500.0]
    train = builders.job("train", runtime_s=4 * builders.HOUR, deadline_s=8 * builders.HOUR)
    train.interruptible.min_segment.CopyFrom(to_duration(builders.HOUR))
    train.interruptible.resume_overhead.CopyFrom(to_duration(0))
    plain = builders.job("plain", runtime_s=2 * builders.HOUR, deadline_s=8 * builders.HOUR)
    request = builders.request(
        [train, plain], [builders.cluster("a")], {"a": peak}, lateness_gco2_per_slot=1e-9
    )
    response = await stub.Solve(request, timeout=TIMEOUT)
    by_id = builders.placements_by_id(response)
    segments = [(s.start_slot, s.end_slot) for s in by_id["train"].segments]
    assert segments == [(0, 2), (5, 7)]
    assert by_id["train"].segments[1].start.ToDatetime(tzinfo=UTC) == START + 5 * HOUR
    assert by_id["train"].gco2 == pytest.approx(sum(s.gco2 for s in by_id["train"].segments))
    assert list(by_id["plain"].segments) == []

    # A bad interruptible field refuses that job alone (the job rule), the others are still solved.
    request.jobs[0].interruptible.max_pauses = -1
    response = await stub.Solve(request, timeout=TIMEOUT)
    by_id = builders.placements_by_id(response)
    assert not by_id["train"].placed
    assert by_id["train"].unplaced_reason == optimizer_pb2.UNPLACED_REASON_INVALID
    assert "negative" in by_id["train"].reason
    assert by_id["plain"].placed


def _patterns(spec: SegmentSpec) -> list[list[tuple[int, int]]]:
    """Every valid segment pattern of a job, by enumeration of its window's slots (no programme involved)."""
    found = []
    window = list(range(spec.first, spec.end))
    for mask in itertools.product((0, 1), repeat=len(window)):
        ran = [t for t, on in zip(window, mask, strict=True) if on]
        segments: list[tuple[int, int]] = []
        for t in ran:
            if segments and segments[-1][1] == t:
                segments[-1] = (segments[-1][0], t + 1)
            else:
                segments.append((t, t + 1))
        k = len(segments)
        if not k or (spec.max_segments is not None and k > spec.max_segments):
            continue
        overheads = [spec.first_overhead] + [spec.overhead] * (k - 1)
        if any(b - a < spec.min_len or b - a <= o for (a, b), o in zip(segments, overheads, strict=True)):
            continue
        if len(ran) == spec.run_slots(k):
            found.append(segments)
    return found


@pytest.mark.parametrize("seed", range(12))
def test_caspian_with_segments_against_brute_force(seed):
    """Two interruptible jobs and a plain one sharing a cluster that fits one at a time: CASPIAN's objective
    is within its gap of the exhaustive optimum and its bound never above it."""
    rng = random.Random(seed)
    slots = 7
    forecast = [float(rng.choice([100, 200, 600, 900])) for _ in range(slots)]
    rules = [Interruptible(resume_overhead=rng.choice([timedelta(0), HOUR])) for _ in range(2)]
    jobs = [
        _job("i0", rng.randint(1, 2), slots, rules[0]),
        _job("i1", rng.randint(1, 2), slots, rules[1]),
        _job("p", rng.randint(1, 2), slots),
    ]
    problem = _problem(jobs, {"a": forecast}, cpu=1000)
    options = Options(lateness_gco2_per_slot=0.0)
    cp = compile_problem(problem, options)
    choices = []
    for j in range(3):
        spec = segment_spec(cp, j)
        if spec is not None:
            choices.append([("seg", segments) for segments in _patterns(spec)])
        else:
            d = int(cp.duration[j])
            choices.append([("one", [(s, s + d)]) for s in range(0, int(cp.latest[j]) + 1)])
    best = math.inf
    for combo in itertools.product(*choices):
        used = [0] * slots
        for _, segments in combo:
            for a, b in segments:
                for t in range(a, b):
                    used[t] += 1
        if max(used) > 1:
            continue
        cost = sum(
            segments_cost(cp, j, 0, segments) if kind == "seg" else cp.option_cost(j, 0, segments[0][0])
            for j, (kind, segments) in enumerate(combo)
        )
        best = min(best, cost)
    result = solve(problem, options)
    if math.isinf(best):
        assert result.placed_count < 3
        return
    assert result.placed_count == 3
    assert result.objective_gco2 >= best - 1e-9
    assert result.lower_bound_gco2 <= best + 1e-9
    assert result.objective_gco2 <= best * (1 + max(result.gap, 0.0)) + 1e-9
    if result.status == Status.OPTIMAL:
        assert result.objective_gco2 <= best * 1.01 + 1e-9
