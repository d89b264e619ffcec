"""Server bootstrap shared by all four services: grpc.aio server, health, reflection, interceptor,
/metrics endpoint, optional TLS/mTLS, and graceful shutdown on SIGTERM/SIGINT.

A service's `build_server(settings, deps)` creates a GrpcServer, adds its servicer, and returns it; `serve`
starts it, announces the address, and runs until a signal arrives.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry

from services.common.auth import AuthInterceptor, TokenTable
from services.common.channels import ClientTLS
from services.common.clock import Clock
from services.common.interceptors import ErrorMapper, ObservabilityInterceptor
from services.common.metrics import MetricsEndpoint, RpcMetrics
from services.common.settings import non_negative, port, setting

log = logging.getLogger("caspian.server")

MiB = 1024 * 1024


def _metrics_port(value: int) -> None:
    if not -1 <= value <= 65535:
        raise ValueError(f"expected a port 0-65535, or -1 to disable, got {value}")


@dataclass(frozen=True)
class ServerSettings:
    """Fields every service has; a service's settings class extends this one."""

    host: str = setting("127.0.0.1", None, "address to bind the gRPC server to")
    port: int = setting(0, port, "gRPC port; 0 picks a free one")
    metrics_port: int = setting(0, _metrics_port, "Prometheus /metrics port; 0 picks a free one, -1 disables")
    shutdown_grace_seconds: float = setting(
        5.0, non_negative, "time in-flight calls get to finish on shutdown"
    )
    reflection: bool = setting(True, None, "serve gRPC server reflection")
    max_message_bytes: int = setting(8 * MiB, non_negative, "largest gRPC message accepted")
    log_level: str = setting("INFO", None, "log level")
    max_connection_age_seconds: float = setting(
        0.0,
        non_negative,
        "close client connections after this long (0: never), so clients re-resolve DNS and reach new replicas",
    )
    tls_cert_file: str = setting("", None, "PEM certificate; with TLS_KEY_FILE turns TLS on")
    tls_key_file: str = setting("", None, "PEM private key")
    tls_client_ca_file: str = setting(
        "", None, "PEM CA bundle; when set, clients must present a certificate (mTLS)"
    )
    auth_tokens_file: str = setting(
        "", None, "YAML/JSON bearer-token table; when set, caspian.v1 methods need a token"
    )
    client_ca_file: str = setting(
        "", None, "PEM CA bundle to verify the services this one calls; turns client TLS on"
    )
    client_cert_file: str = setting("", None, "PEM certificate this service presents to others (mTLS)")
    client_key_file: str = setting("", None, "PEM private key for CLIENT_CERT_FILE")

    def client_tls(self) -> ClientTLS:
        return ClientTLS(self.client_ca_file, self.client_cert_file, self.client_key_file)


def _read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def server_credentials(settings: ServerSettings) -> grpc.ServerCredentials | None:
    if not (settings.tls_cert_file and settings.tls_key_file):
        return None
    client_ca = _read(settings.tls_client_ca_file) if settings.tls_client_ca_file else None
    return grpc.ssl_server_credentials(
        [(_read(settings.tls_key_file), _read(settings.tls_cert_file))],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


class GrpcServer:
    """One service's gRPC server with the shared runtime wired in."""

    def __init__(
        self,
        name: str,
        settings: ServerSettings,
        registry: CollectorRegistry | None = None,
        interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
        clock: Clock | None = None,
    ):
        """`clock` is the service's own: with it every answer carries its now (services/common/clockstamp.py)."""
        self.name = name
        self.settings = settings
        self.registry = registry if registry is not None else CollectorRegistry()
        self.rpc_metrics = RpcMetrics.create(self.registry)
        if settings.auth_tokens_file:
            interceptors = [AuthInterceptor(TokenTable.from_file(settings.auth_tokens_file)), *interceptors]
        self.observability = ObservabilityInterceptor(self.rpc_metrics, clock=clock)
        self.server = grpc.aio.server(
            interceptors=[self.observability, *interceptors],
            options=[
                ("grpc.max_receive_message_length", settings.max_message_bytes),
                ("grpc.max_send_message_length", max(settings.max_message_bytes, 64 * MiB)),
                ("grpc.so_reuseport", 0),
                *(
                    [
                        ("grpc.max_connection_age_ms", int(settings.max_connection_age_seconds * 1000)),
                        ("grpc.max_connection_age_grace_ms", int(settings.shutdown_grace_seconds * 1000)),
                    ]
                    if settings.max_connection_age_seconds > 0
                    else []
                ),
            ],
        )
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self.service_names: list[str] = []
        self.port: int | None = None
        self.metrics: MetricsEndpoint | None = None
        self._on_start: list[Callable[[], Awaitable[None]]] = []
        self._before_drain: list[Callable[[], Awaitable[None]]] = []
        self._on_stop: list[Callable[[], Awaitable[None]]] = []

    def add_service(self, add_to_server: Callable, servicer: object, full_name: str) -> None:
        add_to_server(servicer, self.server)
        self.service_names.append(full_name)

    def map_errors(self, mapper: ErrorMapper) -> None:
        """Give unexpected exceptions a contract status (e.g. a locked database: UNAVAILABLE) before start."""
        self.observability.error_mapper = mapper

    def on_start(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run `callback` once the server serves (start background tasks)."""
        self._on_start.append(callback)

    def before_drain(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run `callback` when shutdown begins, before in-flight calls drain (end long-lived streams)."""
        self._before_drain.append(callback)

    def on_stop(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run `callback` after the server has stopped taking calls (close clients, flush state)."""
        self._on_stop.append(callback)

    @property
    def address(self) -> str:
        return f"{self.settings.host}:{self.port}"

    async def start(self) -> int:
        names = [*self.service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name]
        if self.settings.reflection:
            reflection.enable_server_reflection([*names, reflection.SERVICE_NAME], self.server)
        bind = f"{self.settings.host}:{self.settings.port}"
        credentials = server_credentials(self.settings)
        if credentials is None:
            self.port = self.server.add_insecure_port(bind)
        else:
            self.port = self.server.add_secure_port(bind, credentials)
        if not self.port:
            raise OSError(f"could not bind {bind}")
        await self.server.start()
        for service in ["", *self.service_names]:
            await self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        if self.settings.metrics_port >= 0:
            self.metrics = MetricsEndpoint(self.registry, self.settings.host, self.settings.metrics_port)
        for callback in self._on_start:
            await callback()
        return self.port

    async def set_serving(self, serving: bool) -> None:
        """Health of every service of this server (and the server's own), e.g. NOT_SERVING while its store
        cannot commit; a server shutting down stays NOT_SERVING."""
        status = (
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for service in ["", *self.service_names]:
            await self.health.set(service, status)

    async def stop(self, grace: float | None = None) -> None:
        """Turn health to NOT_SERVING, let in-flight calls drain for the grace period, then stop."""
        await self.health.enter_graceful_shutdown()
        await _run_all(self._before_drain)
        await self.server.stop(self.settings.shutdown_grace_seconds if grace is None else grace)
        await _run_all(reversed(self._on_stop))
        if self.metrics is not None:
            self.metrics.close()
            self.metrics = None


async def _run_all(callbacks) -> None:
    for callback in list(callbacks):
        try:
            await callback()
        except Exception:  # noqa: BLE001 - shutdown goes on; the failure is logged
            log.exception("shutdown callback failed")


def announce(server: GrpcServer) -> None:
    """One line on stdout that people and tests read to find the service."""
    metrics = f"{server.settings.host}:{server.metrics.port}" if server.metrics else "off"
    print(f"READY service={server.name} grpc={server.address} metrics={metrics}", flush=True)
    log.info(
        "serving", extra={"address": server.address, "metrics": metrics, "services": server.service_names}
    )


async def serve(build: Callable[[], Awaitable[GrpcServer]]) -> None:
    """Build, start and run a server until SIGTERM or SIGINT, then shut it down gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await build()
    await server.start()
    announce(server)
    waiter = asyncio.create_task(server.server.wait_for_termination())
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    log.info("shutting down", extra={"grace_seconds": server.settings.shutdown_grace_seconds})
    await server.stop()
    for task in (waiter, stopper):
        task.cancel()
    log.info("stopped")


def run(build: Callable[[], Awaitable[GrpcServer]]) -> None:
    try:
        asyncio.run(serve(build))
    except KeyboardInterrupt:
        pass
    sys.stdout.flush()
