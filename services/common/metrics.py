"""Prometheus metrics: each service owns a CollectorRegistry (tests pass their own) and serves /metrics."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, Counter, Histogram, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

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


# How often the serving thread looks for a shutdown request: close() waits up to this long.
SHUTDOWN_POLL_S = 0.02


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        """Scrapes are not logged."""


class MetricsEndpoint:
    """The /metrics HTTP endpoint (prometheus_client's WSGI app on a daemon thread); port 0 picks a free port.

    Started here rather than by `start_http_server`, whose thread polls for shutdown every 0.5 s, so that
    stopping a service does not wait half a second for its metrics endpoint.
    """

    def __init__(self, registry: CollectorRegistry, host: str, port: int):
        # The address family of the host as the resolver gives it (an IPv6 host binds an IPv6 socket).
        family, _, _, _, sockaddr = socket.getaddrinfo(host, port)[0]

        class Server(ThreadingWSGIServer):
            address_family = family

        self._server = make_server(
            str(sockaddr[0]), port, make_wsgi_app(registry), Server, handler_class=_QuietHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(SHUTDOWN_POLL_S,), name="metrics", daemon=True
        )
        self._thread.start()
        self.port = self._server.server_port

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
