"""The dispatcher's Prometheus metrics (names fixed across the project)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 2.5, 5, 10, 30)


@dataclass
class DispatcherMetrics:
    dispatch_latency: Histogram
    jobs_created: Counter
    spoke_ready: Gauge
    spoke_requests: Counter
    circuit_open: Gauge
    job_events: Counter
    jobs_suspended: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> DispatcherMetrics:
        return cls(
            dispatch_latency=Histogram(
                "caspian_dispatch_latency_seconds",
                "Real time from the hub opening the dispatch gate to the Job being created on the spoke.",
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            jobs_created=Counter(
                "caspian_jobs_created", "Jobs created on spokes, by cluster.", ["cluster"], registry=registry
            ),
            spoke_ready=Gauge(
                "caspian_spoke_ready",
                "1 while the spoke's API answers, else 0.",
                ["cluster"],
                registry=registry,
            ),
            spoke_requests=Counter(
                "caspian_spoke_requests",
                "Kubernetes API calls to spokes, by outcome "
                "(ok, client_error, server_error, timeout, unreachable, circuit_open).",
                ["cluster", "outcome"],
                registry=registry,
            ),
            circuit_open=Gauge(
                "caspian_circuit_open",
                "1 while the spoke's circuit breaker is open.",
                ["cluster"],
                registry=registry,
            ),
            job_events=Counter(
                "caspian_job_events",
                "Job state changes reported to WatchJobEvents, by phase.",
                ["phase"],
                registry=registry,
            ),
            jobs_suspended=Counter(
                "caspian_job_suspend_patches",
                "Patches of spec.suspend that changed a Job, by cluster and action (suspend, resume).",
                ["cluster", "action"],
                registry=registry,
            ),
        )
