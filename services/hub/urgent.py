"""Jobs that must start before the planning grid does.

The hub plans on slots that begin at the next slot boundary (`Grid.at`), so a job whose slack is shorter
than the wait for that boundary cannot be planned at all: a 10-minute job due 12 minutes after it arrives,
7 minutes before a boundary. Such a job is *urgent*. Rather than refuse it, the hub starts it at once (or at
its earliest start, if that is still ahead: off the grid too), on a cluster with room for it until it ends,
chosen before the optimizer runs. Its reservation then goes into the optimizer's request with
the running jobs', so the plan for everything else leaves it room.

Choosing the cluster follows the policy: carbon-aware policies take the cluster with the least forecast
gCO2 over the job's run (ties: the first by name); the carbon-agnostic ones (and temporal-only, which never
moves a job in space, and carbon-blind cycles) take the least loaded, telling equally loaded clusters apart
by a stable hash of the job id (services/common/stable.py) rather than by name. Urgent jobs are placed least
slack first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from caspian.v1 import common_pb2
from services.common.stable import stable_min
from services.hub.grid import Grid
from services.hub.ports import demand_of
from services.optimizer.problem import Reservation


@dataclass(frozen=True)
class UrgentJob:
    id: str
    resources: common_pb2.Resources
    start: float  # seconds since the epoch: now, or the earliest start if that is later
    runtime: float
    deadline: float
    clusters: tuple[str, ...]  # where it may run: allowed, large enough and ready


@dataclass(frozen=True)
class UrgentPlacement:
    job_id: str
    cluster: str
    start: float
    gco2: float
    energy_wh: float


# (job, cluster) -> (gCO2, Wh) of running the job there over [job.start, job.start + job.runtime).
Cost = Callable[[UrgentJob, str], tuple[float, float]]


def place_urgent(
    jobs: Sequence[UrgentJob],
    capacity: Mapping[str, common_pb2.Resources],
    reservations: Sequence[Reservation],
    grid: Grid,
    cost: Cost,
    carbon_aware: bool,
) -> tuple[list[UrgentPlacement], list[Reservation], list[str]]:
    """Place each urgent job where it fits for its whole run.

    Returns the placements, a reservation for each (to send to the optimizer with the others), and the ids
    of jobs no cluster has room for now.
    """
    used = {name: [[0, 0, 0] for _ in range(grid.slots)] for name in capacity}
    for r in reservations:
        if r.cluster in used:
            _book(used[r.cluster], r.resources, r.start_slot, r.end_slot)

    placements: list[UrgentPlacement] = []
    booked: list[Reservation] = []
    waiting: list[str] = []
    for job in sorted(jobs, key=lambda j: (j.deadline - j.start - j.runtime, j.id)):
        first, end = grid.span(job.start, job.start + job.runtime)
        room = [
            n for n in job.clusters if n in used and _fits(used[n], capacity[n], job.resources, first, end)
        ]
        if not room:
            waiting.append(job.id)
            continue
        costs = {n: cost(job, n) for n in room}
        if carbon_aware:
            cluster = min(room, key=lambda n: (costs[n][0], n))
        else:
            cluster = stable_min(job.id, {n: _load(used[n], capacity[n], first) for n in room})
        _book(used[cluster], job.resources, first, end)
        gco2, energy = costs[cluster]
        placements.append(UrgentPlacement(job.id, cluster, job.start, gco2, energy))
        booked.append(
            Reservation(
                cluster=cluster,
                resources=demand_of(job.resources),
                start_slot=first,
                end_slot=end,
                job_id=job.id,
            )
        )
    return placements, booked, waiting


def _book(slots: list[list[int]], resources: common_pb2.Resources, first: int, end: int) -> None:
    for i in range(max(0, first), min(end, len(slots))):
        slot = slots[i]
        slot[0] += resources.cpu_millis
        slot[1] += resources.memory_bytes
        slot[2] += resources.gpus


def _fits(
    slots: list[list[int]], capacity: common_pb2.Resources, need: common_pb2.Resources, first: int, end: int
) -> bool:
    limit = (capacity.cpu_millis, capacity.memory_bytes, capacity.gpus)
    want = (need.cpu_millis, need.memory_bytes, need.gpus)
    return all(
        slots[i][k] + want[k] <= limit[k] for i in range(first, min(end, len(slots))) for k in range(3)
    )


def _load(slots: list[list[int]], capacity: common_pb2.Resources, first: int) -> float:
    """The largest used share of any resource in the job's first slot."""
    if not slots:
        return 0.0
    slot = slots[min(first, len(slots) - 1)]
    shares = [
        used / limit
        for used, limit in zip(slot, (capacity.cpu_millis, capacity.memory_bytes, capacity.gpus), strict=True)
        if limit > 0
    ]
    return max(shares, default=0.0)
