"""Step 7, accounting: the actual and counterfactual gCO2 of every finished run, once its intensity is known.

Actual: the run as it happened (started_at -> finished_at) on its cluster, over the carbon service's history
for that zone (the hub's cache of forecasts when the service does not answer). Counterfactual: the same run
time at the carbon-agnostic placement fixed at the first plan (counterfactual.py), over the same source.
The saving is split through X, the same run on the baseline's cluster at the actual start: temporal =
counterfactual - X, spatial = X - actual (the two add up to the saving; CarbonAccount in common.proto).
A run whose intensity is not known yet is accounted by a later cycle.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import UTC, datetime

from caspian.v1.common_pb2 import ClusterInfo
from services.common.timeconv import from_timestamp, timestamp_seconds
from services.hub import lifecycle
from services.hub.accounting import job_energy_wh, mean_intensity
from services.hub.clusters import ClusterRegistry
from services.hub.metrics import HubMetrics
from services.hub.ports import CarbonPort, IntensitySample
from services.hub.scheduling.report import CycleReport
from services.hub.store import AppWrapperRecord, Store


class Accountant:
    def __init__(
        self, store: Store, clusters: ClusterRegistry, carbon: CarbonPort, metrics: HubMetrics | None
    ):
        self.store = store
        self.clusters = clusters
        self.carbon = carbon
        self.metrics = metrics

    async def account(self, report: CycleReport, clog: logging.LoggerAdapter) -> None:
        records = await self.store.app_wrappers_needing_accounting()
        if not records:
            return
        clusters = self.clusters.clusters()
        windows: dict[str, list[tuple[float, float]]] = defaultdict(list)
        plans: list[tuple[AppWrapperRecord, ClusterInfo | None, ClusterInfo | None]] = []
        for record in records:
            status = record.message.status
            if not (status.HasField("started_at") and status.HasField("finished_at")):
                plans.append((record, None, None))
                continue
            start_s, end_s = timestamp_seconds(status.started_at), timestamp_seconds(status.finished_at)
            run = clusters.get(status.target_cluster)
            base = clusters.get(record.baseline_cluster) if record.baseline_cluster else None
            if run is not None:
                windows[run.zone].append((start_s, end_s))
            if base is not None and record.baseline_start is not None:
                windows[base.zone].append((record.baseline_start, record.baseline_start + (end_s - start_s)))
                windows[base.zone].append((start_s, end_s))
            plans.append((record, run, base))
        samples = {zone: await self._intensity_samples(zone, spans) for zone, spans in windows.items()}
        updates = []
        deferred = 0
        for record, run, base in plans:
            status = record.message.status
            if run is None:
                # Never ran, or its cluster is gone: nothing to integrate; the planned figure stands.
                actual = status.carbon.planned_gco2 if status.HasField("started_at") else 0.0
                energy = status.carbon.energy_wh if status.HasField("started_at") else 0.0
                counterfactual = status.carbon.counterfactual_gco2 if status.HasField("started_at") else 0.0
                updates.append(
                    lifecycle.change(
                        record.id,
                        lifecycle.account,
                        actual=actual,
                        counterfactual=counterfactual,
                        energy=energy,
                    )
                )
                continue
            t0 = from_timestamp(status.started_at)
            t1 = from_timestamp(status.finished_at)
            seconds = (t1 - t0).total_seconds()
            intensity = mean_intensity(samples.get(run.zone, []), t0, t1)
            if intensity is None:
                deferred += 1
                continue
            resources = record.message.template.resources
            energy = job_energy_wh(resources, seconds, run)
            actual = energy / 1000.0 * intensity
            counterfactual = status.carbon.counterfactual_gco2
            split: tuple[float, float] | None = None
            if base is not None and record.baseline_start is not None:
                b0 = datetime.fromtimestamp(record.baseline_start, UTC)
                base_samples = samples.get(base.zone, [])
                base_intensity = mean_intensity(base_samples, b0, b0 + (t1 - t0))
                shifted_intensity = mean_intensity(base_samples, t0, t1)
                base_kwh = job_energy_wh(resources, seconds, base) / 1000.0
                if base_intensity is not None:
                    counterfactual = base_kwh * base_intensity
                    if shifted_intensity is not None:
                        shifted = base_kwh * shifted_intensity
                        split = (shifted - actual, counterfactual - shifted)
            updates.append(
                lifecycle.change(
                    record.id,
                    lifecycle.account,
                    actual=actual,
                    counterfactual=counterfactual,
                    energy=energy,
                    split=split,
                )
            )
            if self.metrics is not None:
                self.metrics.carbon_emitted.inc(actual)
                self.metrics.carbon_counterfactual.inc(counterfactual)
                self.metrics.carbon_avoided.inc(max(0.0, counterfactual - actual))
        await lifecycle.commit(self.store, updates)
        if deferred:
            report.notes.append(f"accounting deferred for {deferred} finished jobs: no intensity data yet")
        clog.info("accounted", extra={"accounted": len(updates), "deferred": deferred})

    async def _intensity_samples(self, zone: str, spans: list[tuple[float, float]]) -> list[IntensitySample]:
        start = datetime.fromtimestamp(min(s for s, _ in spans), UTC)
        end = datetime.fromtimestamp(max(e for _, e in spans), UTC)
        try:
            return await self.carbon.history(zone, start, end)
        except Exception:  # noqa: BLE001 - the hub's cache of earlier forecasts stands in
            rows = await self.store.intensities(zone, start.timestamp(), end.timestamp())
            return [
                IntensitySample(datetime.fromtimestamp(r.start, UTC), r.seconds, r.gco2_per_kwh) for r in rows
            ]
