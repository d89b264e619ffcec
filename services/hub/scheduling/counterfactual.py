"""Step 5, the counterfactual: where and at what cost a job would have run without CASPIAN.

The carbon-agnostic placement is the least-loaded cluster (by CPU share from the probe) at the first slot at
or after the earliest start (an off-grid job's: its start). Equally loaded clusters (an idle fleet) are told
apart by a stable hash of the id (services/common/stable.py), as a scheduler breaking ties at random would:
the first by name would always charge the counterfactual to the same cluster, whatever its grid.
"""

from __future__ import annotations

from caspian.v1 import common_pb2
from services.common.stable import stable_min
from services.hub.accounting import job_energy_wh, series_mean
from services.hub.grid import Grid
from services.hub.lifecycle import Baseline
from services.hub.scheduling.snapshot import CarbonView, CycleSnapshot
from services.hub.scheduling.triage import earliest_of, fitting_clusters, runtime_of
from services.hub.store import AppWrapperRecord


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
