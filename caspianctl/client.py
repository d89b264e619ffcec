"""The connection to the hub: one channel, bearer token metadata, TLS, and a deadline on every call."""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc

from caspian.v1 import hub_pb2_grpc
from services.common.channels import ClientTLS

DEFAULT_HUB = "127.0.0.1:50050"


def _read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


@dataclass(frozen=True)
class Connection:
    address: str = DEFAULT_HUB
    timeout: float = 10.0
    token: str = ""
    tls: ClientTLS = field(default_factory=ClientTLS)
    # Name to check the hub's certificate against, when it differs from the address's host.
    server_name: str = ""

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    def open_channel(self) -> grpc.Channel:
        options: list[tuple[str, object]] = [("grpc.max_receive_message_length", 64 << 20)]
        if self.server_name:
            options.append(("grpc.ssl_target_name_override", self.server_name))
        if not self.tls.enabled:
            return grpc.insecure_channel(self.address, options=options)
        key = _read(self.tls.key_file) if self.tls.key_file else None
        cert = _read(self.tls.cert_file) if self.tls.cert_file else None
        credentials = grpc.ssl_channel_credentials(
            root_certificates=_read(self.tls.ca_file), private_key=key, certificate_chain=cert
        )
        return grpc.secure_channel(self.address, credentials, options=options)


class HubClient:
    """HubService calls with the connection's deadline and metadata applied."""

    def __init__(self, connection: Connection):
        self.connection = connection
        self.channel = connection.open_channel()
        self.stub = hub_pb2_grpc.HubServiceStub(self.channel)

    def call(self, method: str, request, *, timeout: float | None = None):
        rpc = getattr(self.stub, method)
        return rpc(
            request,
            timeout=self.connection.timeout if timeout is None else timeout,
            metadata=self.connection.metadata,
        )

    def stream(self, method: str, request, *, timeout: float | None = None):
        """A server stream; without `timeout` it runs until the server ends it or the caller cancels."""
        rpc = getattr(self.stub, method)
        return rpc(request, timeout=timeout, metadata=self.connection.metadata)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> HubClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
