"""Prometheus metrics: each service owns a CollectorRegistry (tests pass their own) and serves /metrics."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

RPC_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


@dataclass
class RpcMetrics:
    requests: Counter
    duration: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry) -> RpcMetrics:
        return cls(
            requests=Counter(
                "api_requests",
                "gRPC requests handled, by method and status code.",
                ["method", "code"],
                registry=registry,
            ),
            duration=Histogram(
                "api_request_duration_seconds",
                "gRPC handling time, by method.",
                ["method"],
                buckets=RPC_BUCKETS,
                registry=registry,
            ),
        )


class MetricsEndpoint:
    """The /metrics HTTP endpoint; port 0 picks a free port."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int):
        self._server, self._thread = start_http_server(port, addr=host, registry=registry)
        self.port = self._server.server_port

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
