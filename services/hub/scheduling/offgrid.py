"""Step 2b, off-grid jobs: those with too little slack to wait for the grid's first boundary start at once.

They are placed before the optimizer runs (services/hub/urgent.py), on a cluster with room for their whole
run; their reservations then go into the optimizer's request with the running jobs', so the plan for
everything else leaves them room.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from caspian.v1 import common_pb2
from services.hub import lifecycle
from services.hub.scheduling.counterfactual import baseline, forecast_run
from services.hub.scheduling.report import CycleReport, SchedulerConfig, iso
from services.hub.scheduling.request import cycle_policy, usable_capacity
from services.hub.scheduling.snapshot import CycleSnapshot
from services.hub.store import AppWrapperRecord, Update
from services.hub.urgent import UrgentJob, UrgentPlacement, place_urgent
from services.optimizer.problem import Policy, Reservation

# Policies that never choose a cluster by its carbon: off-grid jobs go to the least loaded cluster.
SPACE_BLIND = (Policy.ROUND_ROBIN, Policy.LEAST_LOADED, Policy.TEMPORAL_ONLY)


def off_grid_placements(
    jobs: Sequence[UrgentJob],
    snapshot: CycleSnapshot,
    running_use: Mapping[str, common_pb2.Resources],
    reservations: Sequence[Reservation],
    config: SchedulerConfig,
) -> tuple[list[UrgentPlacement], list[Reservation], list[str]]:
    """(placements, their reservations, ids of jobs no cluster has room for now)."""
    ready, carbon, grid = snapshot.ready, snapshot.carbon, snapshot.grid

    def cost(job: UrgentJob, name: str) -> tuple[float, float]:
        return forecast_run(job.resources, job.runtime, ready[name].info, carbon, grid, job.start)

    return place_urgent(
        jobs,
        {name: usable_capacity(view, running_use) for name, view in ready.items()},
        reservations,
        grid,
        cost,
        carbon_aware=cycle_policy(config, carbon.blind) not in SPACE_BLIND,
    )


def place_off_grid(
    off_grid: Mapping[str, tuple[AppWrapperRecord, UrgentJob]],
    snapshot: CycleSnapshot,
    running_use: Mapping[str, common_pb2.Resources],
    reservations: Sequence[Reservation],
    config: SchedulerConfig,
    report: CycleReport,
    cycle: int,
) -> tuple[list[Update], list[Reservation]]:
    """Start the jobs that cannot wait for the grid: their changes and their reservations."""
    placements, booked, waiting = off_grid_placements(
        [job for _, job in off_grid.values()], snapshot, running_use, reservations, config
    )
    updates = []
    for placement in placements:
        record, job = off_grid[placement.job_id]
        report.planned += 1
        updates.append(
            lifecycle.change(
                record.id,
                lifecycle.place,
                revision=record.revision,
                cluster=placement.cluster,
                start_s=placement.start,
                gco2=placement.gco2,
                energy_wh=placement.energy_wh,
                baseline=None if record.baseline_cluster else baseline(record, snapshot, start=job.start),
                cycle=cycle,
            )
        )
    for job_id in waiting:
        record, job = off_grid[job_id]
        latest = iso(job.deadline - job.runtime)
        why = f"waiting: it must start by {latest} to meet its deadline, and no allowed cluster has room now"
        updates.append(
            lifecycle.change(record.id, lifecycle.requeue, revision=record.revision, reason=why, cycle=cycle)
        )
        report.unplaced += 1
    return updates, booked
