"""Bearer-token authentication per tenant, with an admin role.

Tokens come from a YAML or JSON file (a mounted secret), a list of entries:

    - {token: "<secret>", tenant: "team-a", namespaces: [team-a]}
    - {token: "<secret>", tenant: "ops", roles: [admin]}

`namespaces`, when given, are the only Kubernetes namespaces the tenant's Jobs may go to.

Only the SHA-256 of each token is kept in memory, and tokens are compared in constant time. Health and reflection
stay open; every method under a protected prefix needs `authorization: Bearer <token>`. The caller is available to
servicers through `current_principal()` while its call runs.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import grpc
import yaml

from services.common.interceptors import rewrap

OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


@dataclass(frozen=True)
class Principal:
    tenant: str
    admin: bool = False
    # Namespaces this caller's Jobs may use; empty means any the hub allows.
    namespaces: tuple[str, ...] = ()


_CALLER: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("caspian_principal", default=None)


def current_principal() -> Principal | None:
    """The authenticated caller of the running RPC; None when authentication is off."""
    return _CALLER.get()


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class TokenTable:
    def __init__(self, entries: Iterable[tuple[str, Principal]]):
        self._entries = [(_digest(token), principal) for token, principal in entries]

    @classmethod
    def from_file(cls, path: str) -> TokenTable:
        with open(path, encoding="utf-8") as fh:
            raw = yaml.safe_load(fh) or []
        if not isinstance(raw, list):
            raise ValueError("token file must hold a list of {token, tenant, roles} entries")
        entries = []
        for i, item in enumerate(raw):
            if not isinstance(item, dict) or not item.get("token") or not item.get("tenant"):
                raise ValueError(f"token file entry {i} needs a token and a tenant")
            roles = item.get("roles") or []
            namespaces = item.get("namespaces") or []
            if not isinstance(namespaces, list) or not all(isinstance(n, str) and n for n in namespaces):
                raise ValueError(f"token file entry {i}: namespaces must be a list of names")
            principal = Principal(str(item["tenant"]), "admin" in roles, tuple(namespaces))
            entries.append((str(item["token"]), principal))
        return cls(entries)

    def lookup(self, token: str) -> Principal | None:
        digest = _digest(token)
        found = None
        for known, principal in self._entries:
            if hmac.compare_digest(known, digest):
                found = principal
        return found


def _bearer(metadata) -> str | None:
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str) and value.startswith("Bearer "):
            return value[len("Bearer ") :].strip()
    return None


def _deny(message: str) -> Callable[[Any, grpc.aio.ServicerContext], Awaitable[None]]:
    async def deny(request, context):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    return deny


class AuthInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, table: TokenTable, protected_prefixes: tuple[str, ...] = ("/caspian.v1.",)):
        self.table = table
        self.protected_prefixes = protected_prefixes

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if (
            handler is None
            or method.startswith(OPEN_PREFIXES)
            or not method.startswith(self.protected_prefixes)
        ):
            return handler
        token = _bearer(handler_call_details.invocation_metadata)
        principal = self.table.lookup(token) if token else None
        if principal is None:
            reason = "missing bearer token" if not token else "unknown bearer token"
            return rewrap(handler, lambda _: _deny(reason), lambda _: _deny_stream(reason))
        return rewrap(handler, lambda b: _as_unary(principal, b), lambda b: _as_stream(principal, b))


def _deny_stream(message: str):
    async def deny(request, context):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
        yield  # pragma: no cover - makes this an async generator

    return deny


def _as_unary(principal: Principal, behavior):
    async def wrapper(request, context):
        _CALLER.set(principal)
        return await behavior(request, context)

    return wrapper


def _as_stream(principal: Principal, behavior):
    async def wrapper(request, context):
        _CALLER.set(principal)
        result = behavior(request, context)
        if inspect.isasyncgen(result):
            async for item in result:
                yield item
        else:
            await result

    return wrapper
