"""Placing jobs that must start before the planning grid does (services/hub/urgent.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from caspian.v1 import common_pb2
from services.hub.grid import Grid
from services.hub.ports import demand_of
from services.hub.urgent import UrgentJob, place_urgent
from services.optimizer.problem import Reservation

GRID = Grid(datetime.fromtimestamp(900, UTC), slot_seconds=900, slots=8)  # now is 0..900; the grid starts at 900
INTENSITY = {"clean": 100.0, "dirty": 500.0}


def cpu(millis: int) -> common_pb2.Resources:
    return common_pb2.Resources(cpu_millis=millis)


def job(job_id: str, millis: int = 1000, start: float = 300.0, runtime: float = 1200.0, slack: float = 60.0):
    return UrgentJob(job_id, cpu(millis), start, runtime, start + runtime + slack, ("clean", "dirty"))


def cost(j: UrgentJob, cluster: str) -> tuple[float, float]:
    energy = j.resources.cpu_millis / 1000 * 10.0 * j.runtime / 3600
    return energy / 1000 * INTENSITY[cluster], energy


def test_slot_span_counts_time_before_the_grid_as_slot_zero():
    assert GRID.span(300.0, 1500.0) == (0, 1)
    assert GRID.span(300.0, 1900.0) == (0, 2)
    assert GRID.span(1000.0, 1000.0 + 900 * 20) == (0, 8)


def test_carbon_aware_takes_the_cleanest_cluster_with_room_least_slack_first():
    capacity = {"clean": cpu(2000), "dirty": cpu(4000)}
    running = [Reservation(cluster="clean", resources=demand_of(cpu(1000)), start_slot=0, end_slot=3)]
    jobs = [job("loose", slack=500.0), job("tight", slack=10.0)]
    placements, booked, waiting = place_urgent(jobs, capacity, running, GRID, cost, carbon_aware=True)
    assert [(p.job_id, p.cluster) for p in placements] == [("tight", "clean"), ("loose", "dirty")]
    assert waiting == []
    assert [(r.job_id, r.cluster, r.start_slot, r.end_slot) for r in booked] == [
        ("tight", "clean", 0, 1),
        ("loose", "dirty", 0, 1),
    ]
    assert placements[0].gco2 == cost(jobs[1], "clean")[0] and placements[0].start == 300.0


def test_space_blind_takes_the_least_loaded_and_a_job_without_room_waits():
    capacity = {"clean": cpu(2000), "dirty": cpu(2000)}
    running = [Reservation(cluster="clean", resources=demand_of(cpu(1500)), start_slot=0, end_slot=8)]
    placements, _, waiting = place_urgent(
        [job("a"), job("b"), job("too-big", millis=1000)], capacity, running, GRID, cost, carbon_aware=False
    )
    assert [(p.job_id, p.cluster) for p in placements] == [("a", "dirty"), ("b", "dirty")]
    assert waiting == ["too-big"]
