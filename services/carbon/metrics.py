"""Carbon service metrics (names fixed across the project; labels: zone and provider, a handful each)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

FETCH_BUCKETS = (0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


@dataclass
class CarbonMetrics:
    intensity: Gauge
    provider_errors: Counter
    fetch_seconds: Histogram
    data_age: Gauge
    stale: Gauge
    watch_subscribers: Gauge
    watch_dropped: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> CarbonMetrics:
        return cls(
            intensity=Gauge(
                "grid_carbon_intensity_gco2_per_kwh",
                "Latest grid carbon intensity served, by zone (gCO2/kWh).",
                ["zone"],
                registry=registry,
            ),
            provider_errors=Counter(
                "carbon_provider_errors",
                "Failed provider calls, by provider and zone.",
                ["provider", "zone"],
                registry=registry,
            ),
            fetch_seconds=Histogram(
                "carbon_fetch_seconds",
                "Time one provider call took, retries included, by provider.",
                ["provider"],
                buckets=FETCH_BUCKETS,
                registry=registry,
            ),
            data_age=Gauge(
                "carbon_data_age_seconds",
                "Age of the latest value served, by zone (clock seconds).",
                ["zone"],
                registry=registry,
            ),
            stale=Gauge(
                "carbon_stale", "1 when the zone's latest value is stale.", ["zone"], registry=registry
            ),
            watch_subscribers=Gauge(
                "carbon_watch_subscribers", "Open WatchIntensities streams.", registry=registry
            ),
            watch_dropped=Counter(
                "carbon_watch_dropped_updates",
                "Updates dropped because a subscriber's queue was full (oldest first).",
                registry=registry,
            ),
        )
