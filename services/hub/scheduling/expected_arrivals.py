"""Expected arrivals: clean slots priced at what the work that has not arrived yet would pay without them.

When capacity binds, a clean slot is worth more than the jobs in hand can show: a job arriving in two hours
with a tight deadline may have no other clean slot, while a job in hand with a long window has. The hub plans
only the jobs it holds, so it gives the clean slot to whichever job it sees first.

`ArrivalHistory` is the hub's own record of the jobs it has seen arrive (time, CPU, runtime, the window from
arrival to deadline), kept for a week. `DemandModel` turns it into a demand forecast: the arrival rate per
hour of day (each hour's count shrunk toward the overall rate, once two days are seen; the overall rate before
that; nothing before `MIN_SPAN_SECONDS`), and the mix of recent jobs (their CPU x runtime, in four classes of
window length). No weekday term: it needs weeks of history for one weekday's rate, which the hub rarely holds.

`arrival_prices` fills the expected work of each future slot's arrivals, as a fluid, into the cleanest free
cells (cluster x slot) of its window, in order of arrival and narrow windows first, over the capacity left
after the reservations. The last cell a class fills is its water level: what a unit of that work pays at the
margin. Every cell of its window cleaner than that level is full (the work would have used it otherwise) and
worth the difference to it: the displacement cost a job in hand would impose by taking it. The cell is
priced at value + beta x (level - value), the highest such price over the classes whose window holds it,
but only within a runtime of the work's arrival: a job in hand holds a cell against that work only if it
started before the work arrived, and a plan to start later is re-made beside the new work anyway. Unfilled
work prices those cells at the window's dirtiest. The jobs in hand are not part of the fill (filling them
first raised the prices and lost more on the tuning seeds, docs/evaluation.md).

It is a soft price, never a block: capacity, windows and deadlines of the jobs in hand are untouched, so the
optimizer's feasible set is the same with or without it and a job that needs a priced slot to meet its
deadline still gets it; work not arrived yet is always yielded to work that has. Only CPU is modelled, and
cells are compared by the zone's intensity (not by each cluster's power per CPU). beta = 0
(`CASPIAN_HUB_EXPECTED_ARRIVALS`, the default) leaves every value as it is. Pure and deterministic.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from services.common.timeconv import duration_seconds, timestamp_seconds
from services.hub.store import AppWrapperRecord
from services.optimizer.problem import Cluster, Forecast, Reservation

if TYPE_CHECKING:
    from services.hub.scheduling.snapshot import CycleSnapshot

HOUR = 3600.0
DAY = 86400.0
# The history kept, and the least of it that makes a forecast.
KEEP_SECONDS = 7 * DAY
MIN_SPAN_SECONDS = 6 * HOUR
# The hour-of-day profile needs this much history; each hour's rate is shrunk toward the overall rate as
# if it had this many hours of exposure at that rate.
PROFILE_SPAN_SECONDS = 2 * DAY
PROFILE_PRIOR_HOURS = 2.0
# The job mix: the most recent arrivals, in this many classes of window length.
MIX_SIZE = 200
WINDOW_CLASSES = 4


@dataclass(frozen=True)
class Arrival:
    at_s: float
    cpu_millis: int
    runtime_s: float
    # From arrival to deadline; the horizon's length when the job has none.
    window_s: float


def arrival_of(record: AppWrapperRecord, horizon_s: float) -> Arrival:
    """A stored AppWrapper as an arrival: its creation time, CPU, expected runtime and window."""
    message = record.message
    at = timestamp_seconds(message.created_at)
    window = timestamp_seconds(message.deadline) - at if message.HasField("deadline") else horizon_s
    return Arrival(
        at_s=at,
        cpu_millis=message.template.resources.cpu_millis,
        runtime_s=duration_seconds(message.template.expected_runtime),
        window_s=max(0.0, window),
    )


class ArrivalHistory:
    """The arrivals the hub has seen, oldest first, each once, kept for `KEEP_SECONDS`."""

    def __init__(self) -> None:
        self._arrivals: deque[Arrival] = deque()
        self._ids: dict[str, float] = {}
        self.first_seen_s: float | None = None

    def observe(self, now_s: float, new: Iterable[tuple[str, Arrival]]) -> None:
        """Record the arrivals not seen before (by id), then forget what is older than the history kept."""
        if self.first_seen_s is None:
            self.first_seen_s = now_s
        fresh = sorted((a.at_s, job_id, a) for job_id, a in new if job_id not in self._ids)
        for _, job_id, arrival in fresh:
            self._ids[job_id] = arrival.at_s
            self._arrivals.append(arrival)
        cutoff = now_s - KEEP_SECONDS
        while self._arrivals and self._arrivals[0].at_s < cutoff:
            self._arrivals.popleft()
        if len(self._ids) > 2 * len(self._arrivals) + 1000:
            self._ids = {k: t for k, t in self._ids.items() if t >= cutoff}

    def observe_records(self, now_s: float, records: Iterable[AppWrapperRecord], horizon_s: float) -> None:
        self.observe(
            now_s,
            ((r.message.id, arrival_of(r, horizon_s)) for r in records if r.message.id not in self._ids),
        )

    def arrivals(self) -> list[Arrival]:
        return list(self._arrivals)

    def model(self, now_s: float) -> DemandModel | None:
        """The demand forecast, or None while the history spans less than `MIN_SPAN_SECONDS`."""
        if self.first_seen_s is None:
            return None
        return DemandModel.fit(self.arrivals(), max(now_s - KEEP_SECONDS, self.first_seen_s), now_s)


@dataclass(frozen=True)
class WorkClass:
    share: float  # of the arrivals
    cpu_slot_seconds: float  # mean CPU millis x runtime seconds per arrival
    window_s: float  # mean window
    runtime_s: float = 0.0  # mean runtime


@dataclass(frozen=True)
class DemandModel:
    # Arrivals per second by hour of day (UTC), all 24 equal without a profile.
    rate_by_hour: tuple[float, ...]
    mix: tuple[WorkClass, ...]

    @classmethod
    def fit(cls, arrivals: Sequence[Arrival], since_s: float, now_s: float) -> DemandModel | None:
        span = now_s - since_s
        seen = [a for a in arrivals if since_s <= a.at_s <= now_s]
        if span < MIN_SPAN_SECONDS or not seen:
            return None
        mean_rate = len(seen) / span
        rates = [mean_rate] * 24
        if span >= PROFILE_SPAN_SECONDS:
            counts, exposure = [0] * 24, _hour_exposure(since_s, now_s)
            for a in seen:
                counts[_hour(a.at_s)] += 1
            prior = PROFILE_PRIOR_HOURS * HOUR
            rates = [(counts[h] + mean_rate * prior) / (exposure[h] + prior) for h in range(24)]
        return cls(tuple(rates), _mix(seen[-MIX_SIZE:]))

    def expected_work(self, start_s: float, end_s: float) -> float:
        """Expected CPU millis x seconds of the work arriving in [start_s, end_s), over the whole mix."""
        per_arrival = sum(c.share * c.cpu_slot_seconds for c in self.mix)
        return self.expected_count(start_s, end_s) * per_arrival

    def expected_count(self, start_s: float, end_s: float) -> float:
        total, t = 0.0, start_s
        while t < end_s:
            step = min(end_s, (int(t // HOUR) + 1) * HOUR) - t
            total += self.rate_by_hour[_hour(t)] * step
            t += step
        return total


def _hour(t: float) -> int:
    return int(t // HOUR) % 24


def _hour_exposure(since_s: float, now_s: float) -> list[float]:
    exposure, t = [0.0] * 24, since_s
    while t < now_s:
        step = min(now_s, (int(t // HOUR) + 1) * HOUR) - t
        exposure[_hour(t)] += step
        t += step
    return exposure


def _mix(seen: Sequence[Arrival]) -> tuple[WorkClass, ...]:
    ordered = sorted(seen, key=lambda a: a.window_s)
    n, classes = len(ordered), []
    for k in range(WINDOW_CLASSES):
        part = ordered[k * n // WINDOW_CLASSES : (k + 1) * n // WINDOW_CLASSES]
        if part:
            classes.append(
                WorkClass(
                    share=len(part) / n,
                    cpu_slot_seconds=sum(a.cpu_millis * a.runtime_s for a in part) / len(part),
                    window_s=sum(a.window_s for a in part) / len(part),
                    runtime_s=sum(a.runtime_s for a in part) / len(part),
                )
            )
    return tuple(classes)


def arrival_prices(
    values: Mapping[str, Sequence[float]],
    free_cpu: Mapping[str, Sequence[float]],
    model: DemandModel,
    grid_start_s: float,
    slot_seconds: int,
    beta: float,
) -> dict[str, list[float]]:
    """Each cluster's slot values (gCO2/kWh) with the displacement price of the expected arrivals added (module
    docstring). `free_cpu` is each cluster's CPU millis free per slot after the reservations; a cluster in
    `values` without it, or beta 0, keeps its values."""
    out = {name: [float(v) for v in series] for name, series in values.items()}
    names = sorted(n for n in out if n in free_cpu and len(free_cpu[n]) == len(out[n]))
    if beta <= 0 or not names or not model.mix:
        return out
    slots = len(out[names[0]])
    if any(len(out[n]) != slots for n in names):
        return out
    room = {n: [max(0.0, float(c)) * slot_seconds for c in free_cpu[n]] for n in names}
    need = {n: [float("-inf")] * slots for n in names}
    # Arrivals in slot a - 1 can start at slot a at the earliest.
    for a in range(1, slots):
        count = model.expected_count(grid_start_s + (a - 1) * slot_seconds, grid_start_s + a * slot_seconds)
        for work in model.mix:  # narrow windows first: they have the fewest cells to choose from
            demand = count * work.share * work.cpu_slot_seconds
            end = min(slots, a + max(1, round(work.window_s / slot_seconds)))
            # Only a job that started before this work arrives holds a cell it cannot give back: one
            # planned to start later is re-planned beside it. So the price reaches the cells a job started
            # before slot a still holds, [a, a + runtime).
            held = min(end, a + max(1, math.ceil(work.runtime_s / slot_seconds)))
            if demand > 0:
                _fill(out, room, need, names, a, end, held, demand)
    for n in names:
        out[n] = [v + beta * max(0.0, lvl - v) for v, lvl in zip(out[n], need[n], strict=True)]
    return out


def _fill(
    values: Mapping[str, Sequence[float]],
    room: dict[str, list[float]],
    need: dict[str, list[float]],
    names: Sequence[str],
    start: int,
    end: int,
    held: int,
    demand: float,
) -> None:
    cells = sorted((values[n][t], n, t) for n in names for t in range(start, end))
    if not cells:
        return
    # Overflow: the work that finds no room pays the window's dirtiest cell (or runs late).
    level = cells[-1][0]
    for value, n, t in cells:
        if room[n][t] <= 0:
            continue
        take = min(room[n][t], demand)
        room[n][t] -= take
        demand -= take
        if demand <= 0:
            level = value
            break
    # Every cell of the window cleaner than the level is full (the work would have used it otherwise):
    # a unit of it taken by a job in hand sends a unit of this work to the level.
    for _, n, t in cells:
        if t < held:
            need[n][t] = max(need[n][t], level)


def free_cpu(cluster: Cluster, reservations: Sequence[Reservation], slots: int) -> list[float]:
    """CPU millis of `cluster` not held by a reservation, per slot of the grid."""
    free = [float(cluster.capacity.cpu_millis)] * slots
    for r in reservations:
        if r.cluster == cluster.name:
            for t in range(max(0, r.start_slot), min(slots, r.end_slot)):
                free[t] -= r.resources.cpu_millis
    return free


def priced_for_arrivals(
    forecasts: Sequence[Forecast],
    clusters: Sequence[Cluster],
    reservations: Sequence[Reservation],
    snapshot: CycleSnapshot,
    beta: float,
) -> list[Forecast]:
    """The request's forecasts with the expected arrivals' price on their slots (`arrival_prices`)."""
    if snapshot.demand is None:
        return list(forecasts)
    grid = snapshot.grid
    values = {f.cluster: f.gco2_per_kwh for f in forecasts}
    free = {c.name: free_cpu(c, reservations, grid.slots) for c in clusters}
    priced = arrival_prices(values, free, snapshot.demand, grid.start_s, grid.slot_seconds, beta)
    return [replace(f, gco2_per_kwh=tuple(priced[f.cluster])) for f in forecasts]
