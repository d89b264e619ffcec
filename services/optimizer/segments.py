"""Interruptible jobs: segment patterns on one cluster, and the exact dynamic programme that prices them.

Slot granularity: segments start and end on slot boundaries. A job with useful run time r still to do needs
W = ceil(r / L) useful slots; each resume costs o = ceil(resume_overhead / L) extra run slots (the overhead is
rounded up to whole slots and charged as run time, so as energy); the first segment pays it too when the job
needs a resume. A pattern with k segments therefore runs W + o (k - 1) (+ o) slots, every one charged in full.
Each segment lasts at least m = ceil(min_segment / L) slots (one slot when unset), or the whole run when that
is shorter than m; at most 1 + max_pauses - pauses_taken segments.

`cheapest_pattern` finds, among every pattern inside the window [first, end) using only the slots marked
usable, one of least total slot price: a dynamic programme over slots whose state is (useful slots done,
length of the running segment capped at max(m, o + 1), segments started). It is exact: the brute-force test
enumerates every pattern of tiny instances and finds none cheaper.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from services.optimizer import segment_dp
from services.optimizer.compiled import Compiled

_EPS = 1e-6


@dataclass(frozen=True)
class SegmentSpec:
    work: int  # useful slots still to run
    overhead: int  # run slots each resume costs
    first_overhead: int  # the first segment's overhead (a job that needs a resume), else 0
    min_len: int  # slots each segment lasts at least
    max_segments: int | None  # None: no limit
    first: int  # earliest slot
    end: int  # the window is [first, end)
    # Share of the last useful slot in use (the runtime's remainder), charged pro rata like a one-piece run.
    last_frac: float = 1.0

    def run_slots(self, segments: int) -> int:
        return self.work + self.first_overhead + self.overhead * (segments - 1)

    @property
    def can_split(self) -> bool:
        """Whether any pattern has two segments; if not, the patterns are the one-piece runs."""
        allowed = self.max_segments is None or self.max_segments >= 2
        return allowed and self.run_slots(2) >= 2 * self.min_len


def _slots(seconds: float, slot_s: float) -> int:
    return max(0, math.ceil(seconds / slot_s - _EPS))


def segment_spec(cp: Compiled, j: int) -> SegmentSpec | None:
    """The job's segment rules on the grid; None for a job that runs in one piece."""
    job = cp.problem.jobs[j]
    rule = job.interruptible
    if rule is None:
        return None
    L = cp.slot_s
    overhead = _slots(rule.resume_overhead.total_seconds(), L)
    first_overhead = overhead if job.needs_resume else 0
    # compiled.py adds a paused job's first overhead to its run in one piece.
    work = max(1, int(cp.duration[j]) - first_overhead)
    min_len = max(1, _slots(rule.min_segment.total_seconds(), L))
    min_len = min(min_len, work + first_overhead)
    max_segments = None
    if rule.max_pauses is not None:
        max_segments = 1 + max(0, rule.max_pauses - max(0, job.pauses_taken))
    end = cp.slots
    if job.deadline is not None:
        # The work completes (1 - last share) of a slot before the end of its last slot.
        offset = (job.deadline - cp.problem.grid.start).total_seconds() / L
        end = min(end, math.floor(offset + 1.0 - float(cp.frac[j]) + _EPS))
    return SegmentSpec(
        work,
        overhead,
        first_overhead,
        min_len,
        max_segments,
        int(cp.earliest[j]),
        max(0, end),
        float(cp.frac[j]),
    )


# Above this many (state x slot) steps the numpy programme (segment_dp.py) is the faster of the two.
NUMPY_FROM_STEPS = 6_000


def cheapest_pattern(
    spec: SegmentSpec, price: np.ndarray, usable: np.ndarray, occupancy: np.ndarray | None = None
) -> tuple[float, list[tuple[int, int]]] | None:
    """Least total price of a pattern, and its segments [(start_slot, end_slot)], or None when none fits.
    `occupancy` [T] is a price per slot held, charged in full even in the last slot (capacity multipliers)."""
    m = spec.min_len
    cap = max(m, spec.overhead + 1, spec.first_overhead + 1)
    unlimited = spec.max_segments is None
    # k: segments started; without a limit 2 stands for "two or more" (only the first segment is special).
    kmax = 2 if unlimited else int(spec.max_segments or 1)
    first, end = max(0, spec.first), min(spec.end, len(price))
    if end - first < spec.run_slots(1):
        return None
    states = (spec.work + 1) * (cap + 1) * (kmax + 1)
    if states * (end - first) >= NUMPY_FROM_STEPS:
        moves = segment_dp.moves(spec.work, m, spec.overhead, spec.first_overhead, cap, kmax, unlimited)
        found = segment_dp.cheapest_ran_slots(moves, first, end, price, usable, spec.last_frac, occupancy)
    else:
        found = _cheapest_loop(spec, price, usable, occupancy, cap, kmax, first, end)
    if found is None:
        return None
    cost, ran_slots = found
    return cost, slot_runs(ran_slots)


def slot_runs(slots: list[int]) -> list[tuple[int, int]]:
    """Ascending slots as their runs of consecutive ones, [(start, end)]."""
    runs: list[tuple[int, int]] = []
    for t in slots:
        if runs and runs[-1][1] == t:
            runs[-1] = (runs[-1][0], t + 1)
        else:
            runs.append((t, t + 1))
    return runs


def _cheapest_loop(
    spec: SegmentSpec,
    price: np.ndarray,
    usable: np.ndarray,
    occupancy: np.ndarray | None,
    cap: int,
    kmax: int,
    first: int,
    end: int,
) -> tuple[float, list[int]] | None:
    """The programme as a plain loop over the reachable states: the faster one for small state spaces."""
    W, m = spec.work, spec.min_len
    unlimited = spec.max_segments is None

    def overhead_of(k: int) -> int:
        return spec.first_overhead if k == 1 else spec.overhead

    # state (u, l, k) -> cost; l = 0: paused (or not started), else the running segment's length (capped).
    states: dict[tuple[int, int, int], float] = {(0, 0, 0): 0.0}
    parents: list[dict[tuple[int, int, int], tuple[tuple[int, int, int], bool]]] = []
    best: tuple[float, int, tuple[int, int, int]] | None = None
    for t in range(first, end):
        nxt: dict[tuple[int, int, int], float] = {}
        back: dict[tuple[int, int, int], tuple[tuple[int, int, int], bool]] = {}

        def relax(
            state: tuple[int, int, int],
            cost: float,
            came: tuple[int, int, int],
            ran: bool,
            nxt: dict[tuple[int, int, int], float] = nxt,
            back: dict[tuple[int, int, int], tuple[tuple[int, int, int], bool]] = back,
        ) -> None:
            if cost < nxt.get(state, math.inf) - 1e-12:
                nxt[state] = cost
                back[state] = (came, ran)

        p = float(price[t])
        hold = 0.0 if occupancy is None else float(occupancy[t])
        for (u, run, k), cost in states.items():
            if run == 0 or run >= m:  # may be paused through slot t
                relax((u, 0, k), cost, (u, run, k), False)
            if not usable[t] or not math.isfinite(p):
                continue
            if run > 0:  # the running segment goes on
                step = 1 if run >= overhead_of(k) else 0
                if u + step <= W and (step or u < W):
                    charge = (p * spec.last_frac if u + step == W and step else p) + hold
                    relax((u + step, min(run + 1, cap), k), cost + charge, (u, run, k), True)
            elif u < W and (k < kmax):  # a new segment starts
                k2 = min(k + 1, 2) if unlimited else k + 1
                step = 1 if overhead_of(k2) == 0 else 0
                charge = (p * spec.last_frac if u + step == W and step else p) + hold
                relax((u + step, 1, k2), cost + charge, (u, run, k), True)
        states = nxt
        parents.append(back)
        for (u, run, k), cost in states.items():
            if u == W and run >= m and (best is None or cost < best[0] - 1e-12):
                best = (cost, t + 1, (u, run, k))
    if best is None:
        return None
    cost, finish, state = best
    ran_slots: list[int] = []
    for t in range(finish - 1, first - 1, -1):
        came, ran = parents[t - first][state]
        if ran:
            ran_slots.append(t)
        state = came
    ran_slots.reverse()
    return cost, ran_slots


def slot_energy_kwh(cp: Compiled, j: int, c: int) -> float:
    """Energy of one run slot of job j on cluster c, kWh."""
    return float(cp.watts[j, c]) / 1000.0 * cp.slot_s / 3600.0


def slot_prices(cp: Compiled, j: int, c: int) -> np.ndarray:
    """[T] the objective's price of running job j on cluster c in each slot (decision intensity, preference)."""
    price = slot_energy_kwh(cp, j, c) * cp.decision_intensity[c]
    if cp.preferred[j, c]:
        price = price * (1.0 - cp.options.preferred_discount)
    return price


def fixed_cost(cp: Compiled, j: int, c: int, first_slot: int) -> float:
    """The pattern-independent part of the objective: migration and the lateness tie-breaker of the start."""
    cost = 0.0
    if cp.current[j] >= 0 and cp.current[j] != c:
        cost += cp.options.migration_cost_gco2
    return cost + cp.options.lateness_gco2_per_slot * (first_slot - int(cp.earliest[j]))


def _weighted(values: np.ndarray, segments: list[tuple[int, int]], last_frac: float) -> float:
    """Sum over the run slots, the last one (where the work completes) at its share in use."""
    total = float(sum(values[a:b].sum() for a, b in segments))
    return total - (1.0 - last_frac) * float(values[segments[-1][1] - 1])


def segments_cost(cp: Compiled, j: int, c: int, segments: list[tuple[int, int]]) -> float:
    price = slot_prices(cp, j, c)
    return _weighted(price, segments, float(cp.frac[j])) + fixed_cost(cp, j, c, segments[0][0])


def segments_emissions(
    cp: Compiled, j: int, c: int, segments: list[tuple[int, int]], last: bool = True
) -> float:
    """Reported emissions of the run slots; `last` False: the segments are not the placement's last ones."""
    unit = slot_energy_kwh(cp, j, c)
    return unit * _weighted(cp.intensity[c], segments, float(cp.frac[j]) if last else 1.0)


def segments_energy_wh(
    cp: Compiled, j: int, c: int, segments: list[tuple[int, int]], last: bool = True
) -> float:
    ones = np.ones(cp.slots)
    return 1000.0 * slot_energy_kwh(cp, j, c) * _weighted(ones, segments, float(cp.frac[j]) if last else 1.0)


def pattern_floor(spec: SegmentSpec, price: np.ndarray, usable: np.ndarray) -> float:
    """A lower bound on every pattern's price, cheap: a pattern runs at least n = run_slots(1) usable slots of
    the window, all but its last charged in full, so it costs at least the n - 1 cheapest plus the last
    share of the cheapest (prices are never negative). inf when fewer than n slots are usable."""
    n = spec.run_slots(1)
    window = price[spec.first : spec.end][usable[spec.first : spec.end]]
    if len(window) < n:
        return math.inf
    cheapest = np.partition(window, n - 1)[:n]
    return float(cheapest.sum() - cheapest.max() + spec.last_frac * cheapest.min())


def best_on_clusters(
    cp: Compiled,
    j: int,
    spec: SegmentSpec,
    free: np.ndarray | None,
    clusters: list[int] | None = None,
    beat: float = math.inf,
) -> tuple[float, int, list[tuple[int, int]]] | None:
    """The cheapest (cost, cluster, segments) of job j over its allowed clusters (or `clusters`), using only
    slots where `free` [C, T, R] has room for it (every slot when None); a cluster whose floor cannot beat
    `beat` (or the best found so far) is skipped."""
    best: tuple[float, int, list[tuple[int, int]]] | None = None
    for c in clusters if clusters is not None else np.nonzero(cp.allowed[j])[0].tolist():
        if not cp.allowed[j, c]:
            continue
        usable = np.ones(cp.slots, dtype=bool)
        if free is not None:
            usable = (free[c] >= cp.req[j] - 1e-9).all(axis=1)
        price = slot_prices(cp, j, c)
        target = min(beat, best[0] if best is not None else math.inf)
        if pattern_floor(spec, price, usable) + fixed_cost(cp, j, c, spec.first) >= target:
            continue
        found = cheapest_pattern(spec, price, usable)
        if found is None:
            continue
        # The lateness tie-breaker grows with the first start: a pattern's cost is exact after adding it.
        cost = found[0] + fixed_cost(cp, j, c, found[1][0][0])
        if best is None or cost < best[0] - 1e-12:
            best = (cost, c, found[1])
    return best


def capacity_free_minimum(cp: Compiled, j: int, spec: SegmentSpec, beat: float = math.inf) -> float:
    """A lower bound on the job's cost in any plan: capacity ignored, lateness tie-breaker left out (>= 0).
    Clusters whose floor cannot go below `beat` are skipped: the answer is then min(it, beat) or above."""
    best = math.inf
    anywhere = np.ones(cp.slots, dtype=bool)
    for c in np.nonzero(cp.allowed[j])[0].tolist():
        migration = cp.options.migration_cost_gco2 if cp.current[j] >= 0 and cp.current[j] != c else 0.0
        price = slot_prices(cp, j, c)
        if pattern_floor(spec, price, anywhere) + migration >= min(best, beat):
            continue
        found = cheapest_pattern(spec, price, anywhere)
        if found is not None:
            best = min(best, found[0] + migration)
    return best
