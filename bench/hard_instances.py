"""Seeded optimizer instances in the regimes the product runs: day-long and 72-hour horizons, tight load, short
slack, GPUs, many clusters, bursts of identical jobs and a share of impossible deadlines.

Built from the same real data as bench/instances.py (Electricity Maps 2023 hourly intensities, Alibaba PAI job
lengths and core counts), with these differences:
- Capacity comes from the load asked for, with no floor: each cluster gets its share of the
  jobs' core (and GPU) demand divided by the load, over the span the jobs can run in (first earliest start to
  last deadline); only the largest cluster is made to hold the largest job. The load reached is measured the same way and reported (`measured_load`).
- Slack (deadline - earliest start - runtime) is drawn from `slack_hours`.
- `gpu_share` of the jobs need 1, 2 or 4 GPUs; clusters get GPUs by the same load rule.
- `burst_shapes` > 0: the jobs are copies of that many distinct (length, cores) rows, arriving in `burst_slots`
  distinct slots: array jobs, sweeps and retries.
- `impossible_share` of the jobs get a deadline before earliest start + runtime (they must be refused with
  the reason `deadline`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

import numpy as np

from bench.instances import HARDWARE, ZONES, workload, zone_trace
from services.common.energy import GIB, Power
from services.optimizer.problem import Cluster, Forecast, Grid, Job, Problem, Reservation, Resources

GPU_WATTS = 300.0


@dataclass(frozen=True)
class HardFamily:
    name: str
    jobs: int
    clusters: int
    slots: int
    load: float
    slack_hours: tuple[float, ...] = (2.0, 3.0, 4.0)
    gpu_share: float = 0.0
    burst_shapes: int = 0
    burst_slots: int = 0
    impossible_share: float = 0.05
    slot_s: int = 900
    # jobs arrive over the first ARRIVAL_SHARE of the horizon
    arrival_share: float = 0.6


HARD_FAMILIES = {
    f.name: f
    for f in (
        HardFamily("D96-300", 300, 6, 96, 0.9),
        HardFamily("D96-1000", 1000, 10, 96, 0.9),
        HardFamily("D96-tight", 600, 3, 96, 1.0),
        HardFamily("D96-gpu", 250, 5, 96, 0.9, gpu_share=0.6),
        HardFamily("D96-burst", 5000, 5, 96, 0.9, burst_shapes=4, burst_slots=8),
        HardFamily("H288-25", 2000, 25, 288, 1.0, burst_shapes=40, burst_slots=24),
    )
}


def make_hard_instance(family: HardFamily | str, seed: int = 0) -> tuple[Problem, float]:
    """(problem, measured load): the core-seconds asked divided by the core-seconds offered over the span."""
    fam = HARD_FAMILIES[family] if isinstance(family, str) else family
    rng = np.random.default_rng([seed, fam.jobs, fam.clusters, fam.slots, int(fam.load * 100), 15])
    slot = timedelta(seconds=fam.slot_s)
    horizon_s = fam.slots * fam.slot_s
    trace0, first = zone_trace(ZONES[0])
    horizon_hours = math.ceil(horizon_s / 3600)
    start_hour = int(rng.integers(0, len(trace0) - horizon_hours - 1))
    start = first + timedelta(hours=start_hour)

    rows = workload()
    rows = rows[(rows[:, 1] <= horizon_s / 8) & (rows[:, 1] >= 300)]
    if fam.burst_shapes:
        shapes = rows[rng.integers(0, len(rows), fam.burst_shapes)]
        picks = shapes[rng.integers(0, fam.burst_shapes, fam.jobs)]
        arrival_slots = np.sort(
            rng.choice(int(fam.slots * fam.arrival_share), fam.burst_slots, replace=False)
        )
        arrivals = arrival_slots[rng.integers(0, fam.burst_slots, fam.jobs)] * float(fam.slot_s)
    else:
        picks = rows[rng.integers(0, len(rows), fam.jobs)]
        arrivals = np.floor(rng.uniform(0, horizon_s * fam.arrival_share, fam.jobs) / fam.slot_s) * fam.slot_s
    slacks = rng.choice(np.asarray(fam.slack_hours) * 3600.0, fam.jobs)
    gpus = np.where(rng.random(fam.jobs) < fam.gpu_share, rng.choice([1, 2, 4], fam.jobs), 0)
    impossible = rng.random(fam.jobs) < fam.impossible_share

    names = [f"{ZONES[i % len(ZONES)].lower()}-{i // len(ZONES) + 1}" for i in range(fam.clusters)]
    zones = [ZONES[i % len(ZONES)] for i in range(fam.clusters)]
    jobs = []
    core_s = gpu_s = 0.0
    span_start, span_end = math.inf, 0.0
    for i in range(fam.jobs):
        length, cpus = float(picks[i][1]), max(0.5, float(picks[i][2]))
        if fam.gpu_share and gpus[i]:
            cpus = max(cpus, float(gpus[i]))
        earliest = float(arrivals[i])
        deadline_s = min(horizon_s, earliest + length + slacks[i])
        if impossible[i]:
            deadline_s = earliest + length * 0.5
        else:
            core_s += cpus * length
            gpu_s += gpus[i] * length
            span_start, span_end = min(span_start, earliest), max(span_end, deadline_s)
        jobs.append(
            Job(
                id=f"{fam.name.lower()}-{seed}-{i:05d}",
                resources=Resources(
                    cpu_millis=int(cpus * 1000), memory_bytes=int(cpus * 4 * GIB), gpus=int(gpus[i])
                ),
                runtime=timedelta(seconds=length),
                earliest_start=start + timedelta(seconds=earliest),
                deadline=start + timedelta(seconds=deadline_s),
                home_cluster=names[int(rng.integers(0, fam.clusters))],
            )
        )
    span = max(span_end - span_start, fam.slot_s)
    shares = rng.uniform(0.7, 1.3, fam.clusters)
    shares /= shares.sum()
    biggest_cpu = max(j.resources.cpu_millis for j in jobs) / 1000.0
    biggest_gpu = max(j.resources.gpus for j in jobs)
    clusters, forecasts, reservations = [], [], []
    cores_of = np.maximum(0.5, np.round(core_s / span / fam.load * shares, 1))
    gpus_of = np.round(gpu_s / span / fam.load * shares).astype(int) if gpu_s else np.zeros(fam.clusters, int)
    # The largest cluster holds the largest job, so every job fits somewhere; smaller ones may not.
    cores_of[np.argmax(cores_of)] = max(cores_of.max(), biggest_cpu)
    if gpu_s:
        gpus_of[np.argmax(gpus_of)] = max(int(gpus_of.max()), biggest_gpu)
    offered_core_s = float(cores_of.sum()) * span
    for c, name in enumerate(names):
        cores, gpu_count = float(cores_of[c]), int(gpus_of[c])
        per_core, pue = HARDWARE[(c // len(ZONES)) % 2]
        clusters.append(
            Cluster(
                name=name,
                zone=zones[c],
                capacity=Resources(
                    cpu_millis=int(cores * 1000), memory_bytes=int(cores * 4 * GIB), gpus=gpu_count
                ),
                power=Power(watts_per_core=per_core, watts_per_gib=0.375, watts_per_gpu=GPU_WATTS, pue=pue),
            )
        )
        trace, _ = zone_trace(zones[c])
        hourly = trace[start_hour : start_hour + horizon_hours]
        per_slot = tuple(
            float(hourly[min(len(hourly) - 1, t * fam.slot_s // 3600)]) for t in range(fam.slots)
        )
        forecasts.append(Forecast(cluster=name, gco2_per_kwh=per_slot))
        running = round(cores * rng.uniform(0.05, 0.15), 1)
        if running:
            reservations.append(
                Reservation(
                    cluster=name,
                    resources=Resources(cpu_millis=int(running * 1000), memory_bytes=int(running * 4 * GIB)),
                    start_slot=0,
                    end_slot=int(rng.integers(2, 8)),
                    job_id=f"running-{name}",
                )
            )
    problem = Problem(
        jobs=tuple(jobs),
        clusters=tuple(clusters),
        grid=Grid(start=start, slot=slot, slots=fam.slots),
        forecasts=tuple(forecasts),
        reservations=tuple(reservations),
    )
    return problem, core_s / offered_core_s
