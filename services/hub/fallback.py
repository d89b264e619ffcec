"""Greedy placement inside the hub, for cycles where the optimizer is down or times out.

Jobs in order of deadline (then priority, then id) each take the cheapest (cluster, start slot) that still
has room: cheapest in gCO2 from the request's forecasts, ties to the earlier slot and the less loaded cluster,
so with flat forecasts it is the carbon-agnostic earliest-start, least-loaded rule. It speaks the optimizer's
contract (SolveRequest -> SolveResponse), follows its time-grid conventions, and never looks further than one
job ahead; the optimizer exists because this is not optimal.
"""

from __future__ import annotations

import asyncio
import math
import time

from caspian.v1 import optimizer_pb2
from services.common.energy import Power, energy_wh
from services.common.timeconv import duration_seconds, timestamp_from_seconds, timestamp_seconds, to_duration

Reason = optimizer_pb2.UnplacedReason


class _Cluster:
    def __init__(self, spec: optimizer_pb2.SolveCluster, values: list[float], slots: int):
        self.name = spec.name
        self.spec = spec
        self.capacity = (spec.capacity.cpu_millis, spec.capacity.memory_bytes, spec.capacity.gpus)
        self.values = (values + [values[-1] if values else 0.0] * slots)[:slots]
        self.prefix = [0.0]
        for v in self.values:
            self.prefix.append(self.prefix[-1] + v)
        self.used = [[0, 0, 0] for _ in range(slots)]
        p = spec.power
        self.power = Power(
            p.idle_watts, p.peak_watts, p.watts_per_core, p.watts_per_gpu, p.watts_per_gib, p.pue
        )

    def fits(self, need: tuple[int, int, int], start: int, length: int) -> bool:
        cap = self.capacity
        for used in self.used[start : start + length]:
            if used[0] + need[0] > cap[0] or used[1] + need[1] > cap[1] or used[2] + need[2] > cap[2]:
                return False
        return True

    def take(self, need: tuple[int, int, int], start: int, length: int) -> None:
        for used in self.used[max(start, 0) : start + length]:
            used[0] += need[0]
            used[1] += need[1]
            used[2] += need[2]

    def load(self, slot: int) -> float:
        return self.used[slot][0] / self.capacity[0] if self.capacity[0] else 1.0

    def mean_intensity(self, start: int, runtime_slots: float) -> float:
        whole = int(runtime_slots)
        part = runtime_slots - whole
        total = self.prefix[start + whole] - self.prefix[start]
        if part > 0 and start + whole < len(self.values):
            total += part * self.values[start + whole]
        return total / runtime_slots if runtime_slots > 0 else self.values[start]


def greedy_solve(request: optimizer_pb2.SolveRequest) -> optimizer_pb2.SolveResponse:
    began = time.perf_counter()
    grid_start = timestamp_seconds(request.grid.start)
    slot = duration_seconds(request.grid.slot)
    slots = request.grid.slots
    forecasts = {f.cluster: list(f.gco2_per_kwh) for f in request.forecasts}
    clusters = {c.name: _Cluster(c, forecasts.get(c.name, []), slots) for c in request.clusters}
    for r in request.reservations:
        if r.cluster in clusters:
            need = (r.resources.cpu_millis, r.resources.memory_bytes, r.resources.gpus)
            clusters[r.cluster].take(need, r.start_slot, max(r.end_slot - r.start_slot, 0))

    response = optimizer_pb2.SolveResponse(
        policy=request.options.policy, message="greedy fallback placement in the hub"
    )
    jobs = sorted(request.jobs, key=lambda j: (timestamp_seconds(j.deadline), -j.priority, j.id))
    emissions = agnostic = 0.0
    for job in jobs:
        placement = _place(job, clusters, grid_start, slot, slots)
        if placement.placed:
            emissions += placement.gco2
            agnostic += _agnostic(job, clusters, grid_start, slot, slots)
        response.placements.append(placement)
    response.emissions_gco2 = emissions
    response.objective_gco2 = emissions
    response.agnostic_gco2 = agnostic
    response.placed_count = sum(1 for p in response.placements if p.placed)
    response.unplaced_count = len(response.placements) - response.placed_count
    response.status = optimizer_pb2.SOLVE_STATUS_FEASIBLE
    response.solve_wall_time.CopyFrom(to_duration(time.perf_counter() - began))
    return response


def _window(job, grid_start: float, slot: float, slots: int) -> tuple[int, int, int, float]:
    runtime = duration_seconds(job.runtime)
    length = max(1, math.ceil(runtime / slot - 1e-9))
    first = max(0, math.ceil((timestamp_seconds(job.earliest_start) - grid_start) / slot - 1e-9))
    last = min(
        slots - length, math.floor((timestamp_seconds(job.deadline) - runtime - grid_start) / slot + 1e-9)
    )
    return first, last, length, runtime


def _eligible(job, clusters: dict[str, _Cluster]) -> list[_Cluster]:
    names = list(job.required_clusters) or list(clusters)
    excluded = set(job.excluded_clusters)
    need = (job.resources.cpu_millis, job.resources.memory_bytes, job.resources.gpus)
    out = []
    for name in names:
        c = clusters.get(name)
        if c is None or name in excluded:
            continue
        if need[0] <= c.capacity[0] and need[1] <= c.capacity[1] and need[2] <= c.capacity[2]:
            out.append(c)
    return out


def _place(job, clusters, grid_start: float, slot: float, slots: int) -> optimizer_pb2.Placement:
    placement = optimizer_pb2.Placement(job_id=job.id)
    eligible = _eligible(job, clusters)
    if not eligible:
        placement.unplaced_reason = Reason.UNPLACED_REASON_NO_ELIGIBLE_CLUSTER
        placement.reason = "no cluster in the request is allowed and large enough"
        return placement
    first, last, length, runtime = _window(job, grid_start, slot, slots)
    if first >= slots:
        placement.unplaced_reason = Reason.UNPLACED_REASON_BEYOND_HORIZON
        placement.reason = "earliest start lies beyond the horizon"
        return placement
    if first > last:
        deadline_bound = math.floor((timestamp_seconds(job.deadline) - runtime - grid_start) / slot + 1e-9)
        beyond = deadline_bound > slots - length
        placement.unplaced_reason = (
            Reason.UNPLACED_REASON_BEYOND_HORIZON if beyond else Reason.UNPLACED_REASON_DEADLINE
        )
        placement.reason = "the run does not fit the horizon" if beyond else "the deadline cannot be met"
        return placement
    need = (job.resources.cpu_millis, job.resources.memory_bytes, job.resources.gpus)
    runtime_slots = runtime / slot
    candidates = []
    for c in eligible:
        wh = energy_wh(need[0], need[1], need[2], runtime, c.power, c.capacity[0])
        for s in range(first, last + 1):
            grams = wh / 1000.0 * c.mean_intensity(s, runtime_slots)
            candidates.append((round(grams, 9), s, c.load(s), c.name, c, wh))
    candidates.sort(key=lambda t: t[:4])
    for grams, s, _, _, c, wh in candidates:
        if c.fits(need, s, length):
            c.take(need, s, length)
            placement.placed = True
            placement.cluster = c.name
            placement.start_slot = s
            placement.start.CopyFrom(timestamp_from_seconds(grid_start + s * slot))
            placement.energy_wh = wh
            placement.gco2 = grams
            return placement
    placement.unplaced_reason = Reason.UNPLACED_REASON_CAPACITY
    placement.reason = "no allowed cluster has room in the job's window"
    return placement


def _agnostic(job, clusters, grid_start: float, slot: float, slots: int) -> float:
    """Emissions of the carbon-agnostic choice: the first feasible slot on the least-loaded cluster."""
    eligible = _eligible(job, clusters)
    first, last, _, runtime = _window(job, grid_start, slot, slots)
    if not eligible or first > last:
        return 0.0
    c = min(eligible, key=lambda c: (c.load(first), c.name))
    need = (job.resources.cpu_millis, job.resources.memory_bytes, job.resources.gpus)
    wh = energy_wh(need[0], need[1], need[2], runtime, c.power, c.capacity[0])
    return wh / 1000.0 * c.mean_intensity(first, runtime / slot)


class GreedyOptimizer:
    """The fallback as an OptimizerPort, e.g. for an offline run with no optimizer at all."""

    async def solve(self, request: optimizer_pb2.SolveRequest) -> optimizer_pb2.SolveResponse:
        return await asyncio.to_thread(greedy_solve, request)
