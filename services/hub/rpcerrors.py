"""What the hub's gRPC adapters make of a failed call: `Unavailable` naming the service and status, and the
machine-readable reason a service sent beside it."""

from __future__ import annotations

import grpc

from services.common.errors import REASON_KEY, Unavailable

# Call metadata (the bearer token), as grpc takes it.
Metadata = tuple[tuple[str, str], ...]


def unavailable(service: str, exc: grpc.aio.AioRpcError) -> Unavailable:
    return Unavailable(f"{service}: {exc.code().name}: {exc.details()}")


def reason_of(exc: grpc.aio.AioRpcError) -> str:
    """The machine-readable reason a service sent beside its status (trailing metadata `caspian-reason`)."""
    for key, value in exc.trailing_metadata() or ():
        if key == REASON_KEY:
            return value if isinstance(value, str) else value.decode()
    return ""
