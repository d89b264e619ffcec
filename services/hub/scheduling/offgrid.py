"""Step 3, off-grid jobs: those with too little slack to wait for the grid's first boundary.

A cycle's grid starts at the next slot boundary, so a job whose slack is shorter than the wait for it (a
10-minute job due 12 minutes after it arrives, 7 minutes before a boundary) cannot be planned on that grid.
The optimizer places it all the same: on a grid of its own that starts at the job's start (now, or its
earliest start if that is still ahead), where only slot 0 meets the deadline. That solve runs in-process
(`local_optimizer.py`), before the cycle's main solve and with the same policy (least-loaded for the policies
that never choose a cluster by carbon: round-robin, least-loaded, temporal-only), clusters, capacity and
reservations; the forecast is the cycle's, averaged over the shifted slots. Each placement becomes a
reservation in the main request, so the plan for everything else leaves it room. A job no cluster has room
for now waits, Pending, with the time it must start by.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from caspian.v1 import common_pb2
from services.hub import lifecycle
from services.hub.accounting import power_of, series_mean
from services.hub.grid import Grid
from services.hub.ports import OptimizerPort, demand_of
from services.hub.scheduling.counterfactual import baseline
from services.hub.scheduling.report import CycleReport, SchedulerConfig, iso
from services.hub.scheduling.request import solve_options, usable_capacity
from services.hub.scheduling.snapshot import CycleSnapshot
from services.hub.scheduling.triage import OffGridJob
from services.hub.store import AppWrapperRecord, Update
from services.optimizer.problem import Cluster, Forecast, Job, Policy, Problem, Reservation

SPACE_BLIND = (Policy.ROUND_ROBIN, Policy.LEAST_LOADED, Policy.TEMPORAL_ONLY)


@dataclass(frozen=True)
class OffGridPlacement:
    job_id: str
    cluster: str
    start: float
    gco2: float
    energy_wh: float


def _on(grid: Grid, r: Reservation, main: Grid, now_s: float) -> Reservation | None:
    """A reservation of the main grid on `grid`, covering at least the same time (slot 0 of the main grid
    counts from now)."""
    t0 = now_s if r.start_slot == 0 else main.start_s + r.start_slot * main.slot_seconds
    t1 = main.start_s + r.end_slot * main.slot_seconds
    first = max(0, math.floor((t0 - grid.start_s) / grid.slot_seconds))
    end = min(grid.slots, math.ceil((t1 - grid.start_s) / grid.slot_seconds - 1e-9))
    if end <= first:
        return None
    return Reservation(r.cluster, r.resources, first, end, r.job_id)


async def off_grid_placements(
    jobs: Sequence[OffGridJob],
    snapshot: CycleSnapshot,
    running_use: Mapping[str, common_pb2.Resources],
    reservations: Sequence[Reservation],
    config: SchedulerConfig,
    optimizer: OptimizerPort,
) -> tuple[list[OffGridPlacement], list[Reservation], list[str]]:
    """(placements, their reservations on the cycle's grid, ids of jobs no cluster has room for now)."""
    main, ready = snapshot.grid, snapshot.ready
    by_start: dict[float, list[OffGridJob]] = defaultdict(list)
    for job in jobs:
        by_start[job.start].append(job)
    placements: list[OffGridPlacement] = []
    booked: list[Reservation] = []
    waiting: list[str] = []
    for start in sorted(by_start):
        group = sorted(by_start[start], key=lambda j: j.id)
        slot = main.slot_seconds
        grid = Grid(
            datetime.fromtimestamp(start, UTC), slot, max(math.ceil(j.runtime / slot - 1e-9) for j in group)
        )
        clusters, forecasts = [], []
        for name in sorted(ready):
            info = ready[name].info
            capacity = demand_of(usable_capacity(ready[name], running_use))
            clusters.append(Cluster(name=name, zone=info.zone, capacity=capacity, power=power_of(info)))
            series = snapshot.carbon.series.get(info.zone, [])
            values = tuple(
                series_mean(
                    series, main.start_s, slot, grid.start_s + i * slot, grid.start_s + (i + 1) * slot
                )
                for i in range(grid.slots)
            )
            forecasts.append(Forecast(cluster=name, gco2_per_kwh=values))
        held = [
            shifted
            for r in [*reservations, *booked]
            if r.cluster in ready
            for shifted in [_on(grid, r, main, snapshot.now_s)]
            if shifted is not None
        ]
        problem = Problem(
            jobs=tuple(
                Job(
                    id=j.id,
                    resources=demand_of(j.resources),
                    runtime=timedelta(seconds=j.runtime),
                    earliest_start=grid.start,
                    deadline=datetime.fromtimestamp(j.deadline, UTC),
                    required_clusters=j.clusters,
                )
                for j in group
            ),
            clusters=tuple(clusters),
            grid=grid.domain(),
            forecasts=tuple(forecasts),
            reservations=tuple(held),
        )
        options = solve_options(config, snapshot.carbon.blind)
        if options.policy in SPACE_BLIND:
            # Policies that never choose a cluster by its carbon start an off-grid job on the least loaded.
            options = replace(options, policy=Policy.LEAST_LOADED)
        result = await optimizer.solve(problem, options)
        placed = {p.job_id: p for p in result.placements if p.placed and p.start_slot == 0}
        for j in group:
            p = placed.get(j.id)
            if p is None or p.cluster not in j.clusters or p.late:
                waiting.append(j.id)
                continue
            placements.append(OffGridPlacement(j.id, p.cluster, start, p.gco2, p.energy_wh))
            first, end = main.span(start, start + j.runtime)
            booked.append(Reservation(p.cluster, demand_of(j.resources), first, end, j.id))
    return placements, booked, waiting


async def place_off_grid(
    off_grid: Mapping[str, tuple[AppWrapperRecord, OffGridJob]],
    snapshot: CycleSnapshot,
    running_use: Mapping[str, common_pb2.Resources],
    reservations: Sequence[Reservation],
    config: SchedulerConfig,
    optimizer: OptimizerPort,
    report: CycleReport,
    cycle: int,
) -> tuple[list[Update], list[Reservation]]:
    """Start the jobs that cannot wait for the grid: their changes and their reservations."""
    placements, booked, waiting = await off_grid_placements(
        [job for _, job in off_grid.values()], snapshot, running_use, reservations, config, optimizer
    )
    updates = []
    for placement in placements:
        record, job = off_grid[placement.job_id]
        report.planned += 1
        agnostic = None if record.baseline_cluster else baseline(record, snapshot, start=job.start)
        update = lifecycle.placed(
            record,
            cluster=placement.cluster,
            start_s=placement.start,
            gco2=placement.gco2,
            energy_wh=placement.energy_wh,
            baseline=agnostic,
            cycle=cycle,
        )
        if update is not None:  # None: the job keeps the plan it has
            updates.append(update)
    for job_id in waiting:
        record, job = off_grid[job_id]
        latest = iso(job.deadline - job.runtime)
        why = f"waiting: it must start by {latest} to meet its deadline, and no allowed cluster has room now"
        updates.append(lifecycle.waiting(record, reason=why, cycle=cycle))
        report.unplaced += 1
    return updates, booked
