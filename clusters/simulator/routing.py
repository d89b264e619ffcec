"""Kubernetes REST paths to what they name: resource, namespace, name, subresource, and the verb."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from clusters.simulator.store import RESOURCES, ApiError, Resource


def query_flag(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1")


@dataclass(frozen=True)
class Route:
    resource: Resource
    namespace: str | None
    name: str | None
    subresource: str | None
    watch: bool


def route_for(path: str, query: Mapping[str, str]) -> Route:
    """The resource, namespace, name and subresource a Kubernetes path names; 404 when it names none."""
    parts = path.strip("/").split("/")
    if parts[:2] == ["api", "v1"]:
        group, rest = "", parts[2:]
    elif parts[:3] == ["apis", "batch", "v1"]:
        group, rest = "batch", parts[3:]
    else:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    watch = query_flag(query.get("watch"))
    if rest and rest[0] == "watch":
        watch, rest = True, rest[1:]
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if not rest or rest[0] not in RESOURCES or RESOURCES[rest[0]].group != group or len(rest) > 3:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    resource = RESOURCES[rest[0]]
    if namespace is not None and not resource.namespaced:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if sub not in (None, "status"):
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    return Route(resource, namespace, name, sub, watch)


def verb_for(method: str, route: Route) -> str:
    if method == "GET":
        if route.name is not None:
            return "get"
        return "watch" if route.watch else "list"
    return {"POST": "create", "DELETE": "delete", "PUT": "update", "PATCH": "patch"}.get(
        method, method.lower()
    )
