"""Carbon accounting: energy of a job on a cluster and intensity integrated over an interval.

    energy_wh(job, cluster, seconds) = services.common.energy model (resources x power model x PUE x time)
    gCO2 over [t0, t1]               = energy_wh / 1000 x time-weighted mean intensity over [t0, t1]

The three figures kept per AppWrapper (`CarbonAccount`):
- planned_gco2: the optimizer's figure for the chosen cluster and start, from the forecast (set each time the
  plan changes);
- actual_gco2: the run as it happened (started_at -> finished_at) on its cluster, integrated over the carbon
  service's *history* for that zone (measured data, not the forecast the plan used); when the carbon service
  cannot answer, over the intensities the hub cached from earlier forecasts;
- counterfactual_gco2: the same run under the carbon-agnostic placement (earliest start, least-loaded
  cluster), fixed at the first plan, for the real run duration, integrated over the same source as actual.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from caspian.v1 import common_pb2
from services.common.energy import Power, energy_wh
from services.hub.ports import IntensitySample

# At least this share of an interval must be covered by samples for a mean to count.
MIN_COVERAGE = 0.95


def power_of(cluster: common_pb2.ClusterInfo | None) -> Power:
    if cluster is None:
        return Power()
    p = cluster.power
    return Power(p.idle_watts, p.peak_watts, p.watts_per_core, p.watts_per_gpu, p.watts_per_gib, p.pue)


def job_energy_wh(
    resources: common_pb2.Resources, seconds: float, cluster: common_pb2.ClusterInfo | None
) -> float:
    capacity = cluster.capacity.cpu_millis if cluster is not None else 0
    return energy_wh(
        resources.cpu_millis, resources.memory_bytes, resources.gpus, seconds, power_of(cluster), capacity
    )


def mean_intensity(samples: Sequence[IntensitySample], start: datetime, end: datetime) -> float | None:
    """Time-weighted mean over [start, end], or None when the samples cover too little of it."""
    t0, t1 = start.timestamp(), end.timestamp()
    if t1 <= t0:
        for sample in samples:
            s0 = sample.start.timestamp()
            if s0 <= t0 < s0 + sample.seconds:
                return sample.gco2_per_kwh
        return None
    weighted = covered = 0.0
    for sample in samples:
        s0 = sample.start.timestamp()
        overlap = min(t1, s0 + sample.seconds) - max(t0, s0)
        if overlap > 0:
            weighted += overlap * sample.gco2_per_kwh
            covered += overlap
    if covered < MIN_COVERAGE * (t1 - t0):
        return None
    return weighted / covered


def series_mean(
    values: Sequence[float], grid_start: float, slot_seconds: float, t0: float, t1: float
) -> float:
    """Mean of a slotted series over [t0, t1]; time outside the series takes the nearest slot's value."""
    if not values:
        return 0.0
    if t1 <= t0:
        i = min(max(int((t0 - grid_start) // slot_seconds), 0), len(values) - 1)
        return values[i]
    total = 0.0
    t = t0
    while t < t1:
        i = int((t - grid_start) // slot_seconds)
        slot_end = grid_start + (i + 1) * slot_seconds
        step = min(t1, slot_end) - t
        if step <= 0:  # float edge at a slot boundary
            step = min(t1 - t, slot_seconds)
        total += values[min(max(i, 0), len(values) - 1)] * step
        t += step
    return total / (t1 - t0)
