"""Seeded optimizer instances built from the bundled real data.

- Intensities: Electricity Maps 2023 hourly exports in data/carbon/electricitymaps (direct gCO2/kWh, the
  carbon service's default), one zone per cluster; families with more clusters than zones give each zone
  a second cluster with other hardware (power model) and size.
- Jobs: rows of data/workloads/pai_1k.csv (Alibaba PAI: arrival_time, length, cpus; seconds) drawn with
  replacement. Arrivals are scaled into the first 60 % of the horizon, cpus become cpu_millis with 4 GiB
  per core, and each job gets a deadline slack drawn from a few fixed values. Rows longer than a third of
  the horizon are left out so every job fits.
- Capacity: each cluster's share of the jobs' average core demand over the first 80 % of the horizon,
  divided by the target load (0.5), so capacity binds where and when the grid is clean; the first slots carry reservations for
  jobs already running.

Everything is drawn from one numpy Generator per (family, seed): the same arguments give the same instance.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import numpy as np

from services.common.energy import GIB, Power
from services.optimizer.problem import (
    Cluster,
    Forecast,
    Grid,
    Interruptible,
    Job,
    Problem,
    Reservation,
    Resources,
)

ROOT = Path(__file__).resolve().parent.parent
CARBON_DIR = ROOT / "data" / "carbon" / "electricitymaps"
WORKLOAD = ROOT / "data" / "workloads" / "pai_1k.csv"
INTENSITY_COLUMN = "Carbon Intensity gCO₂eq/kWh (direct)"
ZONES = ("KR", "JP-TK", "US-CAL-CISO", "DE-LU", "GB")
SLACK_HOURS = (4, 8, 12, 24)
TARGET_LOAD = 0.5
# Jobs arrive over the first ARRIVAL_SHARE of the horizon; the load is measured over the first ACTIVE_SHARE.
ARRIVAL_SHARE = 0.6
ACTIVE_SHARE = 0.8


@dataclass(frozen=True)
class Family:
    name: str
    jobs: int
    clusters: int
    slots: int
    slot_s: int = 900
    # Every other job is interruptible (resume overhead 5 minutes, minimum segment 1 hour), the rest plain.
    interruptible: bool = False


FAMILIES = {
    "S": Family("S", 50, 3, 24),
    "M": Family("M", 500, 3, 48),
    "L": Family("L", 2000, 10, 48),
    "XL": Family("XL", 10000, 10, 96),
    # M's very instance, with half of its jobs interruptible.
    "Mi": Family("Mi", 500, 3, 48, interruptible=True),
}
INTERRUPTIBLE = Interruptible(resume_overhead=timedelta(minutes=5), min_segment=timedelta(hours=1))

# (watts per core, PUE): a current and an older generation of hardware
HARDWARE = ((10.0, 1.15), (14.0, 1.45))


@cache
def zone_trace(zone: str) -> tuple[np.ndarray, datetime]:
    values = []
    first = None
    with open(CARBON_DIR / f"{zone}_2023_hourly.csv", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if first is None:
                first = datetime.fromisoformat(row["Datetime (UTC)"]).replace(tzinfo=UTC)
            values.append(float(row[INTENSITY_COLUMN]))
    assert first is not None
    return np.asarray(values), first


@cache
def workload() -> np.ndarray:
    """[rows, 3]: arrival_time, length, cpus."""
    with open(WORKLOAD, encoding="utf-8") as fh:
        rows = [(float(r["arrival_time"]), float(r["length"]), float(r["cpus"])) for r in csv.DictReader(fh)]
    return np.asarray(rows)


def make_instance(family: Family | str, seed: int = 0) -> Problem:
    fam = FAMILIES[family] if isinstance(family, str) else family
    rng = np.random.default_rng([seed, fam.jobs, fam.clusters, fam.slots])
    slot = timedelta(seconds=fam.slot_s)
    horizon_s = fam.slots * fam.slot_s

    trace0, first = zone_trace(ZONES[0])
    hours = len(trace0)
    horizon_hours = math.ceil(horizon_s / 3600)
    start_hour = int(rng.integers(0, hours - horizon_hours - 1))
    start = first + timedelta(hours=start_hour)

    rows = workload()
    rows = rows[rows[:, 1] <= horizon_s / 3]
    picks = rng.integers(0, len(rows), fam.jobs)
    arrivals = rows[:, 0] / rows[:, 0].max() * (horizon_s * ARRIVAL_SHARE)
    slacks = rng.choice(np.asarray(SLACK_HOURS) * 3600.0, fam.jobs)

    cluster_zone = [
        ZONES[i % len(ZONES)] if fam.clusters > len(ZONES) else ZONES[i] for i in range(fam.clusters)
    ]
    generation = [0 if i < len(ZONES) else 1 for i in range(fam.clusters)]
    names = [f"{zone.lower()}-{generation[i] + 1}" for i, zone in enumerate(cluster_zone)]
    homes = rng.integers(0, fam.clusters, fam.jobs)
    pinned = rng.random(fam.jobs) < 0.05

    jobs = []
    demand_core_s = 0.0
    for i, row in enumerate(picks):
        _, length, cpus = rows[row]
        earliest = start + timedelta(seconds=float(arrivals[row]))
        deadline = min(start + timedelta(seconds=horizon_s), earliest + timedelta(seconds=length + slacks[i]))
        demand_core_s += cpus * length
        jobs.append(
            Job(
                id=f"{fam.name.lower()}-{seed}-{i:05d}",
                resources=Resources(cpu_millis=int(cpus * 1000), memory_bytes=int(cpus * 4 * GIB)),
                runtime=timedelta(seconds=float(length)),
                earliest_start=earliest,
                deadline=deadline,
                required_clusters=(names[homes[i]],) if pinned[i] else (),
                home_cluster=names[homes[i]],
            )
        )

    shares = rng.uniform(0.7, 1.3, fam.clusters)
    shares /= shares.sum()
    mean_cores = demand_core_s / (horizon_s * ACTIVE_SHARE) / TARGET_LOAD
    clusters = []
    forecasts = []
    reservations = []
    for c, name in enumerate(names):
        cores = max(8, int(round(mean_cores * shares[c])))
        per_core, pue = HARDWARE[generation[c]]
        clusters.append(
            Cluster(
                name=name,
                zone=cluster_zone[c],
                capacity=Resources(cpu_millis=cores * 1000, memory_bytes=cores * 4 * GIB, gpus=0),
                power=Power(
                    idle_watts=0.0, peak_watts=0.0, watts_per_core=per_core, watts_per_gib=0.375, pue=pue
                ),
            )
        )
        trace, _ = zone_trace(cluster_zone[c])
        hourly = trace[start_hour : start_hour + horizon_hours]
        per_slot = [
            float(hourly[min(len(hourly) - 1, int(t * fam.slot_s // 3600))]) for t in range(fam.slots)
        ]
        forecasts.append(Forecast(cluster=name, gco2_per_kwh=tuple(per_slot)))
        running = int(cores * rng.uniform(0.1, 0.3))
        if running:
            reservations.append(
                Reservation(
                    cluster=name,
                    resources=Resources(cpu_millis=running * 1000, memory_bytes=running * 4 * GIB),
                    start_slot=0,
                    end_slot=int(rng.integers(2, max(3, fam.slots // 6))),
                    job_id=f"running-{name}",
                )
            )
    if fam.interruptible:
        jobs = [
            replace(job, interruptible=INTERRUPTIBLE) if i % 2 == 0 else job for i, job in enumerate(jobs)
        ]
    return Problem(
        jobs=tuple(jobs),
        clusters=tuple(clusters),
        grid=Grid(start=start, slot=slot, slots=fam.slots),
        forecasts=tuple(forecasts),
        reservations=tuple(reservations),
    )
