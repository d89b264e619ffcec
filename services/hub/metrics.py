"""Hub metrics. Names are fixed across the project; units are in the names; labels have few values."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from caspian.v1 import common_pb2

Phase = common_pb2.AppWrapperPhase
PENDING_PHASES = (
    Phase.APP_WRAPPER_PHASE_PENDING,
    Phase.APP_WRAPPER_PHASE_SCHEDULED,
    Phase.APP_WRAPPER_PHASE_DISPATCHING,
)
COMPLETED_PHASES = (
    Phase.APP_WRAPPER_PHASE_SUCCEEDED,
    Phase.APP_WRAPPER_PHASE_FAILED,
    Phase.APP_WRAPPER_PHASE_CANCELLED,
    Phase.APP_WRAPPER_PHASE_UNSCHEDULABLE,
)
# Every phase, by its label value: Failed and Unschedulable apart from Succeeded, as "completed" lumps them.
PHASE_LABELS = {
    number: Phase.Name(number).removeprefix("APP_WRAPPER_PHASE_").lower()
    for number in Phase.values()
    if number != Phase.APP_WRAPPER_PHASE_UNSPECIFIED
}
CYCLE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
DISPATCH_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
CYCLE_OUTCOMES = ("ok", "idle", "fallback", "error")


@dataclass
class HubMetrics:
    app_wrappers_total: Gauge
    app_wrappers_pending: Gauge
    app_wrappers_running: Gauge
    app_wrappers_completed: Gauge
    app_wrappers_by_phase: Gauge
    clusters_total: Gauge
    clusters_ready: Gauge
    carbon_emitted: Counter
    carbon_avoided: Counter
    carbon_counterfactual: Counter
    cycle_seconds: Histogram
    cycles: Counter
    last_cycle: Gauge
    carbon_stale: Gauge
    carbon_blind: Gauge
    optimizer_fallbacks: Counter
    dispatch_latency: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry) -> HubMetrics:
        cycles = Counter(
            "caspian_schedule_cycles", "Scheduling cycles, by outcome.", ["outcome"], registry=registry
        )
        for outcome in CYCLE_OUTCOMES:
            cycles.labels(outcome)
        return cls(
            app_wrappers_total=Gauge("appwrappers_total", "AppWrappers in the store.", registry=registry),
            app_wrappers_pending=Gauge(
                "appwrappers_pending", "AppWrappers Pending, Scheduled or Dispatching.", registry=registry
            ),
            app_wrappers_running=Gauge("appwrappers_running", "AppWrappers Running.", registry=registry),
            app_wrappers_completed=Gauge(
                "appwrappers_completed",
                "AppWrappers in a final phase (Succeeded, Failed, Cancelled, Unschedulable).",
                registry=registry,
            ),
            app_wrappers_by_phase=Gauge(
                "caspian_hub_appwrappers",
                "AppWrappers by phase (pending, scheduled, dispatching, running, succeeded, failed, cancelled, "
                "unschedulable).",
                ["phase"],
                registry=registry,
            ),
            clusters_total=Gauge("clusters_total", "Registered clusters.", registry=registry),
            clusters_ready=Gauge("clusters_ready", "Registered clusters that are ready.", registry=registry),
            carbon_emitted=Counter(
                "caspian_carbon_emitted_grams",
                "gCO2 emitted by finished AppWrappers (actual, from measured intensity).",
                registry=registry,
            ),
            carbon_avoided=Counter(
                "caspian_carbon_avoided_grams",
                "gCO2 avoided against the carbon-agnostic placement; a job that emitted more adds zero.",
                registry=registry,
            ),
            carbon_counterfactual=Counter(
                "caspian_carbon_counterfactual_grams",
                "gCO2 finished AppWrappers would have emitted under the carbon-agnostic placement.",
                registry=registry,
            ),
            cycle_seconds=Histogram(
                "caspian_schedule_cycle_seconds",
                "Wall time of one scheduling cycle.",
                buckets=CYCLE_BUCKETS,
                registry=registry,
            ),
            cycles=cycles,
            last_cycle=Gauge(
                "caspian_schedule_cycle", "Number of the last scheduling cycle.", registry=registry
            ),
            carbon_stale=Gauge(
                "caspian_carbon_stale", "1 when the last cycle used stale forecasts.", registry=registry
            ),
            carbon_blind=Gauge(
                "caspian_carbon_blind",
                "1 when the last cycle scheduled without carbon data.",
                registry=registry,
            ),
            optimizer_fallbacks=Counter(
                "caspian_optimizer_fallbacks",
                "Cycles placed by the hub's greedy fallback because the optimizer failed.",
                registry=registry,
            ),
            dispatch_latency=Histogram(
                "caspian_dispatch_latency_seconds",
                "Gate opened to DispatchJob answered.",
                buckets=DISPATCH_BUCKETS,
                registry=registry,
            ),
        )

    def follow_phase_counts(self, counts: Mapping[int, int]) -> None:
        """Read the AppWrapper gauges from `counts` (kept current by the hub) when scraped, not per write."""
        self.app_wrappers_total.set_function(lambda: sum(counts.values()))
        self.app_wrappers_pending.set_function(lambda: sum(counts.get(p, 0) for p in PENDING_PHASES))
        self.app_wrappers_running.set_function(lambda: counts.get(Phase.APP_WRAPPER_PHASE_RUNNING, 0))
        self.app_wrappers_completed.set_function(lambda: sum(counts.get(p, 0) for p in COMPLETED_PHASES))
        for number, name in PHASE_LABELS.items():
            self.app_wrappers_by_phase.labels(name).set_function(_phase_count(counts, number))

    def follow_clusters(self, clusters: Callable[[], Mapping[str, common_pb2.ClusterInfo]]) -> None:
        self.clusters_total.set_function(lambda: len(clusters()))
        self.clusters_ready.set_function(lambda: sum(1 for c in clusters().values() if c.ready))


def _phase_count(counts: Mapping[int, int], phase: int) -> Callable[[], float]:
    return lambda: counts.get(phase, 0)
