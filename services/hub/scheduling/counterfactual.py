"""Step 5, the counterfactual: where and at what cost a job would have run without CASPIAN.

One carbon-agnostic reference: the optimizer's least-loaded plan of the same problem, the plan whose
emissions are the optimizer's `agnostic_gco2`: each job at its earliest start slot with room, on the allowed
cluster with the smallest largest used share over its run, equally loaded clusters told apart by a stable hash
of the id (services/common/stable.py), never by name. So a cycle's agnostic figure is the sum of its jobs'
counterfactuals. Every answer of the optimizer carries each job's run in that plan (`Placement.agnostic`,
read by `agnostic_runs`); only an answer without them (the optimizer ran out of time before the reference,
or predates the field) makes the hub solve the reference itself, in-process (`agnostic_baselines`).

A job that plan leaves out (no room at all), and an off-grid job (placed before the optimizer runs), take
the least-loaded cluster by the probe's CPU share at its start (`baseline`), ties by the same stable hash.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace

from caspian.v1 import common_pb2
from services.common.stable import stable_min
from services.hub.accounting import job_energy_wh, series_mean
from services.hub.grid import Grid
from services.hub.lifecycle import Baseline
from services.hub.ports import OptimizerPort
from services.hub.scheduling.snapshot import CarbonView, CycleSnapshot
from services.hub.scheduling.triage import earliest_of, fitting_clusters, runtime_of
from services.hub.store import AppWrapperRecord
from services.optimizer.problem import Options, Policy, Problem, Result

log = logging.getLogger("caspian.hub.scheduler")


def forecast_run(
    resources: common_pb2.Resources,
    runtime: float,
    info: common_pb2.ClusterInfo,
    carbon: CarbonView,
    grid: Grid,
    start: float,
) -> tuple[float, float]:
    """(gCO2, Wh) of running `resources` for `runtime` from `start` on a cluster, by the cycle's forecast."""
    intensity = series_mean(
        carbon.series.get(info.zone, []), grid.start_s, grid.slot_seconds, start, start + runtime
    )
    energy = job_energy_wh(resources, runtime, info)
    return energy / 1000.0 * intensity, energy


def agnostic_runs(result: Result, grid: Grid) -> dict[str, Baseline] | None:
    """Each job's placement in the least-loaded plan the optimizer's answer carries; None when the answer
    carries no such plan (its `agnostic_gco2` is NaN, or no job has a run though the plan emits something)."""
    runs = {
        p.job_id: Baseline(
            p.agnostic.cluster, grid.start_s + p.agnostic.start_slot * grid.slot_seconds, p.agnostic.gco2
        )
        for p in result.placements
        if p.agnostic is not None
    }
    if math.isnan(result.agnostic_gco2) or (not runs and result.agnostic_gco2 != 0):
        return None
    return runs


async def counterfactuals(
    result: Result, problem: Problem, options: Options, grid: Grid, reference: OptimizerPort
) -> dict[str, Baseline]:
    """Each job's carbon-agnostic placement: from the answer (`agnostic_runs`), else the reference solved."""
    runs = agnostic_runs(result, grid)
    return runs if runs is not None else await agnostic_baselines(problem, options, grid, reference)


async def agnostic_baselines(
    problem: Problem, options: Options, grid: Grid, reference: OptimizerPort
) -> dict[str, Baseline]:
    """Each job's placement in the optimizer's least-loaded plan of `problem` (empty if that run fails)."""
    try:
        result = await reference.solve(problem, replace(options, policy=Policy.LEAST_LOADED))
    except Exception:  # noqa: BLE001 - the per-job fallback stands in
        log.warning("carbon-agnostic reference failed; counterfactuals by probe load", exc_info=True)
        return {}
    return {
        p.job_id: Baseline(p.cluster, grid.start_s + p.start_slot * grid.slot_seconds, p.gco2)
        for p in result.placements
        if p.placed
    }


def baseline(
    record: AppWrapperRecord, snapshot: CycleSnapshot, start: float | None = None
) -> Baseline | None:
    message = record.message
    ready = snapshot.ready
    eligible = fitting_clusters(message, {k: v.info for k, v in ready.items()})
    if not eligible:
        return None

    def load(name: str) -> float:
        view = ready[name]
        capacity = view.info.capacity.cpu_millis or 1
        free = view.free.cpu_millis if view.free is not None else capacity
        return 1.0 - free / capacity

    cluster = stable_min(record.id, {n: load(n) for n in eligible})
    grid = snapshot.grid
    if start is None:
        start = grid.first_start_at_or_after(earliest_of(message, snapshot.now_s))
    grams, _ = forecast_run(
        message.template.resources, runtime_of(message), ready[cluster].info, snapshot.carbon, grid, start
    )
    return Baseline(cluster, start, grams)
