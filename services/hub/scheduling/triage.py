"""Step 2, triage: sort the snapshot's AppWrappers into what holds capacity and what is to be placed.

- Running and Dispatching jobs, and Scheduled jobs whose start has come, hold capacity: a reservation each
  (`reservation_of`, the one rule a preview uses too).
- A Pending or Scheduled job whose deadline can no longer be met, or that no registered cluster allowed by its
  affinities is large enough for, becomes Unschedulable.
- One with no allowed cluster ready, or whose run would end beyond the horizon, waits (Pending, with why).
- A Suspended (interruptible) job holds nothing and goes to the optimizer for its remaining work.
- One with too little slack to wait for the grid's first boundary is off-grid (placed at once, offgrid.py).
- Every other goes to the optimizer.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

from caspian.v1 import common_pb2
from services.common.timeconv import duration_seconds, no_later_than, timestamp_seconds
from services.hub import lifecycle, segments
from services.hub.fit import eligible_clusters, fits
from services.hub.grid import Grid
from services.hub.phases import DISPATCHING, PENDING, RUNNING, SCHEDULED, SUSPENDED
from services.hub.ports import demand_of
from services.hub.scheduling.report import iso
from services.hub.scheduling.segment_plan import segment_reservations
from services.hub.scheduling.snapshot import CycleSnapshot
from services.hub.store import AppWrapperRecord, Update
from services.optimizer.problem import Reservation


def runtime_of(message: common_pb2.AppWrapper) -> float:
    return duration_seconds(message.template.expected_runtime)


def earliest_of(message: common_pb2.AppWrapper, now_s: float) -> float:
    return max(timestamp_seconds(message.earliest_start), now_s)


def fitting_clusters(
    message: common_pb2.AppWrapper, clusters: Mapping[str, common_pb2.ClusterInfo]
) -> list[str]:
    """The clusters the job's affinities allow that are large enough for it, in name order."""
    resources = message.template.resources
    return [n for n in eligible_clusters(message, clusters) if fits(resources, clusters[n].capacity)]


def holds_capacity(record: AppWrapperRecord, now_s: float) -> bool:
    """Running, Dispatching, or Scheduled with its start come: it uses its cluster now."""
    status = record.message.status
    return record.phase in (RUNNING, DISPATCHING) or (
        record.phase == SCHEDULED and timestamp_seconds(status.planned_start) <= now_s
    )


def reservations_of(record: AppWrapperRecord, grid: Grid, now_s: float) -> list[Reservation]:
    """The capacity a job holds: an interruptible job planned in segments holds each planned segment (the
    running one from slot 0 to its planned end; none between segments); any other job as `reservation_of`."""
    if segments.is_interruptible(record.message) and record.message.status.planned_segments:
        return segment_reservations(record, grid, now_s)
    reservation = reservation_of(record, grid, now_s)
    return [reservation] if reservation is not None else []


def reservation_of(record: AppWrapperRecord, grid: Grid, now_s: float) -> Reservation | None:
    """The capacity a dispatched, running or planned job holds on its cluster, in grid slots (None when it
    starts beyond the grid). A job holding capacity now reserves from slot 0; a planned one from its start."""
    message = record.message
    status = message.status
    if record.phase == SCHEDULED and timestamp_seconds(status.planned_start) > now_s:
        begin = timestamp_seconds(status.planned_start)
        first = max(0, grid.slot_index(begin))
    else:
        begin = timestamp_seconds(status.started_at) if status.HasField("started_at") else now_s
        first = 0
    if first >= grid.slots:
        return None
    end = max(first + 1, grid.slot_index(max(begin + runtime_of(message), now_s)))
    return Reservation(
        cluster=status.target_cluster,
        resources=demand_of(message.template.resources),
        start_slot=first,
        end_slot=min(end, grid.slots),
        job_id=record.id,
    )


@dataclass(frozen=True)
class OffGridJob:
    """A job with too little slack to wait for the grid (offgrid.py places it)."""

    id: str
    resources: common_pb2.Resources
    start: float  # seconds since the epoch: now, or the earliest start if that is later
    runtime: float
    deadline: float
    clusters: tuple[str, ...]  # where it may run: allowed, large enough and ready


@dataclass
class Triage:
    reservations: list[Reservation] = field(default_factory=list)
    # What the hub's own running jobs use, by cluster (probes count it as used, not free).
    running_use: dict[str, common_pb2.Resources] = field(
        default_factory=lambda: defaultdict(common_pb2.Resources)
    )
    to_solve: list[AppWrapperRecord] = field(default_factory=list)
    off_grid: dict[str, tuple[AppWrapperRecord, OffGridJob]] = field(default_factory=dict)
    updates: list[Update] = field(default_factory=list)
    unschedulable: int = 0
    waiting: int = 0


def triage(snapshot: CycleSnapshot, cycle: int) -> Triage:
    grid, now_s = snapshot.grid, snapshot.now_s
    result = Triage()
    candidates = []
    for record in snapshot.records:
        if holds_capacity(record, now_s):
            result.reservations.extend(reservations_of(record, grid, now_s))
            if record.phase == RUNNING:
                use = result.running_use[record.message.status.target_cluster]
                resources = record.message.template.resources
                use.cpu_millis += resources.cpu_millis
                use.memory_bytes += resources.memory_bytes
                use.gpus += resources.gpus
        elif record.phase in (PENDING, SCHEDULED):
            candidates.append(record)
        elif record.phase == SUSPENDED and record.message.status.target_cluster in snapshot.ready:
            # Its remaining work is re-planned every cycle, on its cluster (segment_plan.py).
            result.to_solve.append(record)
    for record in candidates:
        _sort(record, snapshot, cycle, result)
    return result


def _sort(record: AppWrapperRecord, snapshot: CycleSnapshot, cycle: int, result: Triage) -> None:
    message = record.message
    grid = snapshot.grid
    runtime = segments.work_seconds(message)
    earliest = earliest_of(message, snapshot.now_s)
    first = grid.first_start_at_or_after(earliest)
    deadline = timestamp_seconds(message.deadline)

    def refuse(why: str) -> None:
        result.updates.append(
            lifecycle.change(record.id, lifecycle.refuse, revision=record.revision, reason=why, cycle=cycle)
        )
        result.unschedulable += 1

    def wait(why: str) -> None:
        result.updates.append(lifecycle.waiting(record, reason=why, cycle=cycle))
        result.waiting += 1

    # Too little slack to wait for the grid: it can still start before the grid does (offgrid.py).
    off_grid = not no_later_than(first + runtime, deadline)
    if off_grid and not no_later_than(earliest + runtime, deadline):
        refuse(
            f"deadline {iso(deadline)} can no longer be met: the earliest start is {iso(earliest)} "
            f"and the job runs {runtime:.0f} s"
        )
        return
    eligible = fitting_clusters(message, snapshot.registered)
    if not eligible:
        refuse("no registered cluster allowed by the affinities is large enough")
        return
    usable = [n for n in eligible if n in snapshot.ready]
    if not usable:
        wait("waiting: no allowed cluster is ready")
        return
    if off_grid and earliest < grid.end_s:
        job = OffGridJob(record.id, message.template.resources, earliest, runtime, deadline, tuple(usable))
        result.off_grid[record.id] = (record, job)
        return
    if first + runtime > grid.end_s:
        wait("waiting: the run ends beyond the planning horizon")
        return
    result.to_solve.append(record)
