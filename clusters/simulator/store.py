"""The simulator's object store: what etcd and the API server's watch cache are to a real cluster.

Every change bumps one resourceVersion counter and is kept in a bounded history, so a watch can start from any
resourceVersion still in that window; an older one is answered 410 Expired, as a compacted etcd would.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.common.clock import Clock

Obj = dict[str, Any]
Predicate = Callable[[Obj], bool]


@dataclass(frozen=True)
class Resource:
    plural: str
    kind: str
    group: str
    namespaced: bool
    verbs: tuple[str, ...]
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/v1" if self.group else "v1"

    @property
    def qualified(self) -> str:
        """How the API server names the resource in messages: `jobs.batch`, `pods`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


RESOURCES: dict[str, Resource] = {
    r.plural: r
    for r in (
        Resource("namespaces", "Namespace", "", False, ("create", "delete", "get", "list", "watch"), ("ns",)),
        Resource("nodes", "Node", "", False, ("get", "list", "watch"), ("no",)),
        Resource("pods", "Pod", "", True, ("delete", "get", "list", "watch"), ("po",), ("all",)),
        Resource("events", "Event", "", True, ("get", "list", "watch"), ("ev",)),
        Resource(
            "jobs", "Job", "batch", True, ("create", "delete", "get", "list", "patch", "watch"), (), ("all",)
        ),
    )
}


class ApiError(Exception):
    """An API failure, answered as a metav1 Status with this code and reason."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details or {}

    def status(self) -> Obj:
        body: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def not_found(resource: Resource, name: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{resource.qualified} "{name}" not found',
        {"name": name, "group": resource.group, "kind": resource.plural},
    )


def rfc3339(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class WatchEvent:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    resource: str
    obj: Obj


@dataclass(eq=False)
class Watcher:
    resource: str
    namespace: str | None
    matches: Predicate
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    expired: bool = False

    def wants(self, event: WatchEvent) -> bool:
        if event.resource != self.resource:
            return False
        if self.namespace is not None and event.obj["metadata"].get("namespace") != self.namespace:
            return False
        return self.matches(event.obj)


class Store:
    def __init__(self, clock: Clock, history: int = 10_000):
        self.clock = clock
        self.rv = 1
        self.objects: dict[str, dict[tuple[str, str], Obj]] = {name: {} for name in RESOURCES}
        self.history: deque[WatchEvent] = deque(maxlen=history)
        # Watches from at or below this resourceVersion cannot be served any more.
        self.oldest_rv = 1
        self.watchers: set[Watcher] = set()
        self.listeners: list[Callable[[WatchEvent], None]] = []

    # Reads -------------------------------------------------------------------------------------------

    def get(self, resource: str, namespace: str, name: str) -> Obj:
        obj = self.objects[resource].get((namespace, name))
        if obj is None:
            raise not_found(RESOURCES[resource], name)
        return obj

    def find(self, resource: str, namespace: str, name: str) -> Obj | None:
        return self.objects[resource].get((namespace, name))

    def list(
        self, resource: str, namespace: str | None = None, matches: Predicate | None = None
    ) -> list[Obj]:
        items = [
            obj
            for (ns, _), obj in self.objects[resource].items()
            if (namespace is None or ns == namespace) and (matches is None or matches(obj))
        ]
        items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        return items

    # Writes ------------------------------------------------------------------------------------------

    def _key(self, obj: Obj) -> tuple[str, str]:
        meta = obj["metadata"]
        return meta.get("namespace", ""), meta["name"]

    def _record(self, type_: str, resource: str, obj: Obj) -> None:
        event = WatchEvent(self.rv, type_, resource, obj)
        self.history.append(event)
        if len(self.history) == self.history.maxlen:
            self.oldest_rv = self.history[0].rv - 1
        for watcher in list(self.watchers):
            if watcher.wants(event):
                watcher.queue.put_nowait(event)
        for listener in self.listeners:
            listener(event)

    def create(self, resource: str, obj: Obj, uid: str | None = None) -> Obj:
        spec = RESOURCES[resource]
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        key = self._key(obj)
        if spec.namespaced and key[0] not in {ns for _, ns in self.objects["namespaces"]}:
            raise ApiError(
                404, "NotFound", f'namespaces "{key[0]}" not found', {"name": key[0], "kind": "namespaces"}
            )
        if key in self.objects[resource]:
            raise ApiError(
                409,
                "AlreadyExists",
                f'{spec.qualified} "{key[1]}" already exists',
                {"name": key[1], "group": spec.group, "kind": spec.plural},
            )
        self.rv += 1
        obj["apiVersion"], obj["kind"] = spec.api_version, spec.kind
        meta.update(
            uid=uid or str(uuid.uuid4()),
            resourceVersion=str(self.rv),
            creationTimestamp=rfc3339(self.clock.now()),
            generation=1,
        )
        self.objects[resource][key] = obj
        self._record("ADDED", resource, obj)
        return obj

    def update(self, resource: str, obj: Obj) -> Obj:
        """Store a changed object (the controllers' status writes); readers hold the old copy."""
        key = self._key(obj)
        if key not in self.objects[resource]:
            raise not_found(RESOURCES[resource], key[1])
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.objects[resource][key] = obj
        self._record("MODIFIED", resource, obj)
        return obj

    def delete(self, resource: str, namespace: str, name: str) -> Obj:
        obj = self.objects[resource].pop((namespace, name), None)
        if obj is None:
            raise not_found(RESOURCES[resource], name)
        self.rv += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self._record("DELETED", resource, obj)
        return obj

    # Watches -----------------------------------------------------------------------------------------

    def watch(self, resource: str, namespace: str | None, matches: Predicate, since: int | None) -> Watcher:
        """A watcher primed with every matching change after `since`; None starts from the current state."""
        if since is not None and since < self.oldest_rv:
            raise ApiError(410, "Expired", f"too old resource version: {since} ({self.oldest_rv + 1})")
        watcher = Watcher(resource, namespace, matches)
        if since is None:
            for obj in self.list(resource, namespace, matches):
                watcher.queue.put_nowait(
                    WatchEvent(int(obj["metadata"]["resourceVersion"]), "ADDED", resource, obj)
                )
        else:
            for event in self.history:
                if event.rv > since and watcher.wants(event):
                    watcher.queue.put_nowait(event)
        self.watchers.add(watcher)
        return watcher

    def unwatch(self, watcher: Watcher) -> None:
        self.watchers.discard(watcher)

    def expire_watches(self) -> int:
        """Compact the history and end every open watch with 410, as after an etcd compaction."""
        self.history.clear()
        self.oldest_rv = self.rv
        expired = len(self.watchers)
        for watcher in list(self.watchers):
            watcher.expired = True
            watcher.queue.put_nowait(None)
        self.watchers.clear()
        return expired

    # Persistence -------------------------------------------------------------------------------------

    def dump(self) -> Obj:
        return {
            "resourceVersion": self.rv,
            "objects": {res: list(objs.values()) for res, objs in self.objects.items()},
        }

    def load(self, state: Obj) -> None:
        self.rv = int(state["resourceVersion"])
        self.oldest_rv = self.rv  # the history is not kept across restarts
        for res, items in state["objects"].items():
            if res in self.objects:
                self.objects[res] = {self._key(obj): obj for obj in items}
