"""Jobs that must start before the planning grid does: the optimizer places them too, on a grid of their own
that starts at their start (services/hub/scheduling/offgrid.py), here with the real solve() in-process."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from caspian.v1 import common_pb2
from services.hub.clusters import ClusterView
from services.hub.grid import Grid
from services.hub.local_optimizer import LocalOptimizer
from services.hub.ports import demand_of
from services.hub.scheduling.offgrid import off_grid_placements
from services.hub.scheduling.report import SchedulerConfig
from services.hub.scheduling.snapshot import CarbonView, CycleSnapshot
from services.hub.scheduling.triage import OffGridJob
from services.optimizer.problem import Policy, Reservation

GRID = Grid(datetime.fromtimestamp(900, UTC), slot_seconds=900, slots=8)  # now is 300; the grid starts at 900
INTENSITY = {"clean": 100.0, "dirty": 500.0}


def cpu(millis: int) -> common_pb2.Resources:
    return common_pb2.Resources(cpu_millis=millis, memory_bytes=1 << 30)


def snapshot(capacity: dict[str, int]) -> CycleSnapshot:
    views = {
        name: ClusterView(
            common_pb2.ClusterInfo(
                name=name,
                zone=name.upper(),
                capacity=common_pb2.Resources(cpu_millis=millis, memory_bytes=64 << 30),
                power=common_pb2.PowerModel(watts_per_core=10.0, pue=1.0),
                ready=True,
            ),
            True,
            "",
            None,
        )
        for name, millis in capacity.items()
    }
    carbon = CarbonView(GRID, {name.upper(): [INTENSITY[name]] * GRID.slots for name in capacity})
    return CycleSnapshot(datetime.fromtimestamp(300, UTC), GRID, views, carbon, [])


def job(
    job_id: str,
    millis: int = 1000,
    start: float = 300.0,
    runtime: float = 1200.0,
    slack: float = 60.0,
    clusters: tuple[str, ...] = ("clean", "dirty"),
) -> OffGridJob:
    return OffGridJob(job_id, cpu(millis), start, runtime, start + runtime + slack, clusters)


def test_slot_span_counts_time_before_the_grid_as_slot_zero():
    assert GRID.span(300.0, 1500.0) == (0, 1)
    assert GRID.span(300.0, 1900.0) == (0, 2)
    assert GRID.span(1000.0, 1000.0 + 900 * 20) == (0, 8)


async def test_carbon_aware_takes_the_cleanest_cluster_with_room_and_starts_at_once():
    running = [Reservation("clean", demand_of(cpu(1000)), 0, 3, "running")]
    jobs = [job("loose", slack=500.0), job("tight", slack=10.0)]
    placements, booked, waiting = await off_grid_placements(
        jobs, snapshot({"clean": 2000, "dirty": 4000}), {}, running, SchedulerConfig(), LocalOptimizer()
    )
    assert waiting == []
    # The clean cluster has room for one of the two for their whole run; the other goes to the dirty one.
    assert sorted(p.cluster for p in placements) == ["clean", "dirty"]
    assert all(p.start == 300.0 for p in placements)
    on_clean = next(p for p in placements if p.cluster == "clean")
    assert on_clean.energy_wh == pytest.approx(10.0 * 1200 / 3600)
    assert on_clean.gco2 == pytest.approx(on_clean.energy_wh / 1000 * 100.0)
    assert sorted((r.cluster, r.start_slot, r.end_slot) for r in booked) == [("clean", 0, 1), ("dirty", 0, 1)]


async def test_space_blind_takes_the_least_loaded_and_a_job_without_room_waits():
    running = [Reservation("clean", demand_of(cpu(1500)), 0, 8, "running")]
    placements, _, waiting = await off_grid_placements(
        [job("a"), job("b"), job("too-big")],
        snapshot({"clean": 2000, "dirty": 2000}),
        {},
        running,
        SchedulerConfig(policy=Policy.LEAST_LOADED),
        LocalOptimizer(),
    )
    assert [(p.job_id, p.cluster) for p in placements] == [("a", "dirty"), ("b", "dirty")]
    assert waiting == ["too-big"]


async def test_a_job_that_cannot_start_at_once_is_not_placed_later():
    # Room only after the running job ends (slot 3): too late for an off-grid job.
    running = [Reservation("clean", demand_of(cpu(2000)), 0, 3, "running")]
    placements, booked, waiting = await off_grid_placements(
        [job("late", clusters=("clean",))],
        snapshot({"clean": 2000}),
        {},
        running,
        SchedulerConfig(),
        LocalOptimizer(),
    )
    assert (placements, booked, waiting) == ([], [], ["late"])
