"""Step 7, accounting: the actual and counterfactual gCO2 of every finished run, once its intensity is known.

Actual: the run as it happened (started_at -> finished_at, or an interruptible job's run segments, resume
overheads inside) on its cluster, over the carbon service's history
for that zone (the hub's cache of forecasts when the service does not answer). Counterfactual: the same run
time at the carbon-agnostic placement fixed at the first plan (counterfactual.py), in one piece (for an
interruptible job: its useful run time, no pause and no overhead), over the same source.
The saving is split through X, the same run on the baseline's cluster at the actual start: temporal =
counterfactual - X, spatial = X - actual (the two add up to the saving; CarbonAccount in common.proto).
A run whose intensity is not known yet is accounted by a later cycle.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import UTC, datetime

from caspian.v1.common_pb2 import ClusterInfo, Resources
from services.common.timeconv import timestamp_seconds
from services.hub import lifecycle, segments
from services.hub.accounting import job_energy_wh, mean_intensity
from services.hub.clusters import ClusterRegistry
from services.hub.metrics import HubMetrics
from services.hub.ports import CarbonPort, IntensitySample
from services.hub.scheduling.report import CycleReport
from services.hub.segments import Span
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
            spans = run_spans(record)
            run = clusters.get(status.target_cluster)
            base = clusters.get(record.baseline_cluster) if record.baseline_cluster else None
            if run is not None:
                windows[run.zone].extend((s.start, s.end) for s in spans)
            if base is not None and record.baseline_start is not None:
                one_piece = one_piece_seconds(record, spans)
                windows[base.zone].append((record.baseline_start, record.baseline_start + one_piece))
                windows[base.zone].extend((s.start, s.end) for s in spans)
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
            spans = run_spans(record)
            resources = record.message.template.resources
            ran = integrate(samples.get(run.zone, []), spans, resources, run)
            if ran is None:
                deferred += 1
                continue
            energy, actual = ran
            counterfactual = status.carbon.counterfactual_gco2
            split: tuple[float, float] | None = None
            if base is not None and record.baseline_start is not None:
                base_samples = samples.get(base.zone, [])
                # The carbon-agnostic run is one piece of the useful run time (no pause, no overhead).
                piece = Span(record.baseline_start, record.baseline_start + one_piece_seconds(record, spans))
                agnostic = integrate(base_samples, [piece], resources, base)
                shifted = integrate(base_samples, spans, resources, base)
                if agnostic is not None:
                    counterfactual = agnostic[1]
                    if shifted is not None:
                        split = (shifted[1] - actual, counterfactual - shifted[1])
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


def run_spans(record: AppWrapperRecord) -> list[Span]:
    """What ran: an interruptible job's run segments (overheads inside; one still open ends when the run
    did), else started_at -> finished_at."""
    status = record.message.status
    end_s = timestamp_seconds(status.finished_at)
    spans = segments.run(status, now_s=end_s) if status.run_segments else []
    return spans or [Span(timestamp_seconds(status.started_at), end_s)]


def one_piece_seconds(record: AppWrapperRecord, spans: list[Span]) -> float:
    """The run time of the same work in one piece: the segments' time less the resume overheads."""
    if len(spans) <= 1:
        return sum(s.seconds for s in spans)
    return segments.useful_seconds(record.message, spans)


def integrate(
    samples: list[IntensitySample], spans: list[Span], resources: Resources, cluster: ClusterInfo
) -> tuple[float, float] | None:
    """(energy Wh, gCO2) of running over `spans` on `cluster`; None when an intensity is not known yet."""
    energy = grams = 0.0
    for span in spans:
        t0, t1 = datetime.fromtimestamp(span.start, UTC), datetime.fromtimestamp(span.end, UTC)
        intensity = mean_intensity(samples, t0, t1)
        if intensity is None:
            return None
        wh = job_energy_wh(resources, span.seconds, cluster)
        energy += wh
        grams += wh / 1000.0 * intensity
    return energy, grams
