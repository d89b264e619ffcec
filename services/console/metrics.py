"""The console's Prometheus metrics, served at /metrics on its HTTP port (a registry per app, so tests pass
their own). Labels stay few: the route's pattern, never a job id."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


@dataclass
class ConsoleMetrics:
    registry: CollectorRegistry
    requests: Counter
    duration: Histogram
    streams: Gauge
    changes: Counter
    jobs_sent: Counter
    batches: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> ConsoleMetrics:
        registry = registry if registry is not None else CollectorRegistry()
        return cls(
            registry=registry,
            requests=Counter(
                "console_http_requests",
                "HTTP requests, by route pattern and status.",
                ["route", "status"],
                registry=registry,
            ),
            duration=Histogram(
                "console_http_request_duration_seconds",
                "Time to answer, by route pattern (not the live stream).",
                ["route"],
                buckets=BUCKETS,
                registry=registry,
            ),
            streams=Gauge("console_live_streams", "Open live-update streams (pages).", registry=registry),
            changes=Counter(
                "console_live_changes",
                "AppWrapper changes received from the hub's watches.",
                registry=registry,
            ),
            jobs_sent=Counter(
                "console_live_job_updates_sent",
                "AppWrapper states sent to pages after coalescing; against console_live_changes_total, what "
                "batching saved.",
                registry=registry,
            ),
            batches=Counter(
                "console_live_batches_sent", "Batches of job updates sent to pages.", registry=registry
            ),
        )
