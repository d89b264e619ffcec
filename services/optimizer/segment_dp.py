"""The segment-pattern dynamic programme of `segments.cheapest_pattern`, one slot at a time over the whole state
array with numpy.

The states (u useful slots done, l length of the running segment capped, k segments started) and their
transitions do not change from slot to slot; only the slot's price, whether it is usable, and so which
transitions are open, do. So the transitions are listed once per spec as flat (source, target) index pairs,
grouped by target, and each slot is a handful of array operations: the cost of every transition, the least per
target (the first of equals, in the fixed order below), and the winning source kept for the backtrack.

Numpy's cost per operation makes this slower than the plain loop for small state spaces and faster for large
ones (a 40-slot job over a 96-slot window: about 8 times); `segments.cheapest_pattern` picks by size.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

_BIG = np.iinfo(np.int64).max


@dataclass(frozen=True)
class _Moves:
    """Every transition of a spec's state space, sorted by target."""

    size: int  # number of states
    src: np.ndarray  # [M] source state, by target
    run: np.ndarray  # [M] bool: the transition runs slot t (else it pauses through it)
    last: np.ndarray  # [M] bool: the run slot where the work completes (charged at the last share)
    targets: np.ndarray  # [G] the distinct targets
    starts: np.ndarray  # [G] where each target's transitions begin in the sorted order
    counts: np.ndarray  # [G]
    finals: np.ndarray  # states where the work is done and the segment is long enough to end
    running: np.ndarray  # [size] bool: the state runs its slot (l > 0)


def state_index(u: int, run: int, k: int, cap: int, kmax: int) -> int:
    return (u * (cap + 1) + run) * (kmax + 1) + k


@functools.lru_cache(maxsize=256)
def moves(
    work: int, min_len: int, overhead: int, first_overhead: int, cap: int, kmax: int, unlimited: bool
) -> _Moves:
    """The transitions of `segments.cheapest_pattern`'s loop, as index arrays."""

    def overhead_of(k: int) -> int:
        return first_overhead if k == 1 else overhead

    def index(u: int, run: int, k: int) -> int:
        return state_index(u, run, k, cap, kmax)

    src: list[int] = []
    dst: list[int] = []
    run_flags: list[bool] = []
    last_flags: list[bool] = []
    for u in range(work + 1):
        for run in range(cap + 1):
            for k in range(kmax + 1):
                here = index(u, run, k)
                if run == 0 or run >= min_len:  # paused through the slot
                    src.append(here)
                    dst.append(index(u, 0, k))
                    run_flags.append(False)
                    last_flags.append(False)
                if run > 0:  # the running segment goes on
                    step = 1 if run >= overhead_of(k) else 0
                    if u + step <= work and (step or u < work):
                        src.append(here)
                        dst.append(index(u + step, min(run + 1, cap), k))
                        run_flags.append(True)
                        last_flags.append(bool(step) and u + step == work)
                elif u < work and k < kmax:  # a new segment starts
                    k2 = min(k + 1, 2) if unlimited else k + 1
                    step = 1 if overhead_of(k2) == 0 else 0
                    src.append(here)
                    dst.append(index(u + step, 1, k2))
                    run_flags.append(True)
                    last_flags.append(bool(step) and u + step == work)
    order = np.argsort(np.asarray(dst, dtype=np.int64), kind="stable")
    sorted_dst = np.asarray(dst, dtype=np.int64)[order]
    targets, starts, counts = np.unique(sorted_dst, return_index=True, return_counts=True)
    size = (work + 1) * (cap + 1) * (kmax + 1)
    finals = np.asarray(
        [index(work, run, k) for run in range(min_len, cap + 1) for k in range(kmax + 1)], dtype=np.int64
    )
    running = np.arange(size) // (kmax + 1) % (cap + 1) > 0  # the run length l of each state_index
    return _Moves(
        size,
        np.asarray(src, dtype=np.int64)[order],
        np.asarray(run_flags, dtype=bool)[order],
        np.asarray(last_flags, dtype=bool)[order],
        targets,
        starts,
        counts,
        finals,
        running,
    )


def cheapest_ran_slots(
    m: _Moves,
    first: int,
    end: int,
    price: np.ndarray,
    usable: np.ndarray,
    last_frac: float,
    occupancy: np.ndarray | None,
) -> tuple[float, list[int]] | None:
    """Least cost and the run slots of the cheapest pattern in [first, end), or None."""
    cost = np.full(m.size, np.inf)
    cost[0] = 0.0  # (0, 0, 0)
    positions = np.arange(len(m.src), dtype=np.int64)
    charge_share = np.where(m.last, last_frac, 1.0)
    parents: list[np.ndarray] = []
    best: tuple[float, int, int] | None = None
    for t in range(first, end):
        p = float(price[t])
        hold = 0.0 if occupancy is None else float(occupancy[t])
        open_slot = bool(usable[t]) and np.isfinite(p)
        values = cost[m.src]
        if open_slot:
            values = values + np.where(m.run, p * charge_share + hold, 0.0)
        else:
            values = np.where(m.run, np.inf, values)
        least = np.minimum.reduceat(values, m.starts)
        winners = np.where(values == np.repeat(least, m.counts), positions, _BIG)
        first_winner = np.minimum.reduceat(winners, m.starts)
        nxt = np.full(m.size, np.inf)
        nxt[m.targets] = least
        parent = np.full(m.size, -1, dtype=np.int64)
        reached = np.isfinite(least)
        parent[m.targets[reached]] = m.src[first_winner[reached]]
        parents.append(parent)
        cost = nxt
        done = cost[m.finals]
        at = int(np.argmin(done))
        if np.isfinite(done[at]) and (best is None or done[at] < best[0] - 1e-12):
            best = (float(done[at]), t + 1, int(m.finals[at]))
    if best is None:
        return None
    total, finish, state = best
    ran: list[int] = []
    for t in range(finish - 1, first - 1, -1):
        if m.running[state]:
            ran.append(t)
        state = int(parents[t - first][state])
    ran.reverse()
    return total, ran
