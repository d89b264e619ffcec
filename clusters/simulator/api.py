"""The HTTP face of a simulated spoke: the subset of the Kubernetes REST API that the dispatcher and kubectl use,
plus a small admin API under /_sim/ that tests use to break the spoke on purpose.

Kubernetes paths served:
    GET  /version /healthz /livez /readyz
    GET  /api /api/v1 /apis /apis/batch /apis/batch/v1                      discovery
    GET  /api/v1/{namespaces,nodes,pods,events}                               list, ?watch=true
    POST /api/v1/namespaces;  GET, DELETE /api/v1/namespaces/{name};  GET /api/v1/nodes/{name}
    GET  /api/v1/namespaces/{ns}/{pods,events}[/{name}];  DELETE /api/v1/namespaces/{ns}/pods/{name}
    GET  /apis/batch/v1/jobs                                                 list, ?watch=true
    GET, POST /apis/batch/v1/namespaces/{ns}/jobs;  GET, DELETE .../jobs/{name};  GET .../jobs/{name}/status
    PATCH /apis/batch/v1/namespaces/{ns}/jobs/{name}    merge, strategic merge or JSON patch (patching.py)

Admin (JSON bodies):
    GET    /_sim/state                      counts, resourceVersion, outage
    POST   /_sim/outage {"mode": "hang"|"unavailable", "seconds": n}   stop answering (or answer 503)
    DELETE /_sim/outage                     answer again
    POST   /_sim/faults {"status": 500, "count": 1, "verbs": ["create"], "resource": "jobs",
                         "delay_seconds": 0, "after_commit": false}    fail or slow down the next requests
    POST   /_sim/expire-watches             end every watch with 410 and compact the history
    POST   /_sim/nodes/{name}/ready {"ready": false}                    flip a node's Ready condition
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from typing import Any

from aiohttp import web

from clusters.simulator.admission import admit_job, label_job
from clusters.simulator.controller import JobController
from clusters.simulator.discovery import SERVER_VERSION, discovery_document
from clusters.simulator.faults import Fault, Outage
from clusters.simulator.patching import patched_job
from clusters.simulator.routing import Route, query_flag, route_for, verb_for
from clusters.simulator.selectors import SelectorError, field_selector, label_selector
from clusters.simulator.store import ApiError, Obj, Resource, Store, Watcher, WatchEvent, not_found
from clusters.simulator.tables import to_table, wants_table

log = logging.getLogger("caspian.spoke")

JSON = "application/json"


def _json(body: Obj, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(body, separators=(",", ":")), status=status, content_type=JSON)


def _error(err: ApiError) -> web.Response:
    return _json(err.status(), err.code)


class SpokeApi:
    def __init__(self, name: str, store: Store, controller: JobController, bookmark_seconds: float = 5.0):
        self.name = name
        self.store = store
        self.controller = controller
        self.bookmark_seconds = bookmark_seconds
        self.outage = Outage()
        self.faults: list[Fault] = []
        self.closing = asyncio.Event()
        self.address = ""
        self.app = web.Application(client_max_size=8 << 20)
        self.app.router.add_route("*", "/_sim/{tail:.*}", self.admin)
        self.app.router.add_route("*", "/{tail:.*}", self.kubernetes)

    # Entry --------------------------------------------------------------------------------------------

    async def kubernetes(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        if self.outage.mode == "hang":
            await self._wait_out_outage()
        if self.outage.mode == "unavailable":
            return _error(
                ApiError(503, "ServiceUnavailable", "the server is currently unable to handle the request")
            )
        try:
            if path in ("/healthz", "/livez", "/readyz"):
                return web.Response(text="ok")
            if path == "/version":
                return _json(SERVER_VERSION)
            discovery = discovery_document(path, self.address)
            if discovery is not None:
                return _json(discovery)
            route = route_for(path, request.query)
            verb = verb_for(request.method, route)
            fault = next((f for f in self.faults if f.applies(verb, route.resource.plural)), None)
            if fault is not None:
                fault.count -= 1
                self.faults = [f for f in self.faults if f.count > 0]
                if fault.delay_seconds and not fault.after_commit:
                    await asyncio.sleep(fault.delay_seconds)
                if fault.status:
                    raise ApiError(
                        fault.status, "InternalError", f"simulated fault on {verb} {route.resource.plural}"
                    )
            response = await self._serve(request, route, verb)
            if fault is not None and fault.delay_seconds and fault.after_commit:
                await asyncio.sleep(fault.delay_seconds)
            return response
        except ApiError as err:
            return _error(err)
        except SelectorError as err:
            return _error(ApiError(400, "BadRequest", str(err)))

    async def _wait_out_outage(self) -> None:
        closing = asyncio.ensure_future(self.closing.wait())
        ended = asyncio.ensure_future(self.outage.ended.wait())
        try:
            await asyncio.wait({closing, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closing.cancel()
            ended.cancel()

    async def _serve(self, request: web.Request, route: Route, verb: str) -> web.StreamResponse:
        res = route.resource
        if verb not in res.verbs:
            raise ApiError(
                405, "MethodNotAllowed", f"{verb} is not supported on {res.qualified} by the spoke simulator"
            )
        ns = route.namespace or ""
        if verb == "get" and route.name is not None:
            obj = self.store.get(res.plural, ns, route.name)
            if wants_table(request.headers.get("Accept", "")):
                return _json(
                    to_table(res.plural, [obj], obj["metadata"]["resourceVersion"], self.store.clock.now())
                )
            return _json(obj)
        if verb == "list":
            return self._list(request, route)
        if verb == "watch":
            return await self._watch(request, route)
        if verb == "create":
            return await self._create(request, route)
        if verb == "patch":
            return await self._patch(request, route)
        return await self._delete(request, route)

    # Verbs --------------------------------------------------------------------------------------------

    def _selectors(self, request: web.Request):
        labels = label_selector(request.query.get("labelSelector"))
        fields = field_selector(request.query.get("fieldSelector"))
        return lambda obj: labels(obj) and fields(obj)

    def _list(self, request: web.Request, route: Route) -> web.Response:
        res = route.resource
        items = self.store.list(res.plural, route.namespace, self._selectors(request))
        rv = str(self.store.rv)
        if wants_table(request.headers.get("Accept", "")):
            return _json(to_table(res.plural, items, rv, self.store.clock.now()))
        return _json(
            {
                "kind": f"{res.kind}List",
                "apiVersion": res.api_version,
                "metadata": {"resourceVersion": rv},
                "items": items,
            }
        )

    async def _create(self, request: web.Request, route: Route) -> web.Response:
        res = route.resource
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ApiError(400, "BadRequest", "the request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the request body must be an object")
        meta = body.setdefault("metadata", {})
        if res.namespaced:
            if meta.get("namespace") not in (None, "", route.namespace):
                raise ApiError(400, "BadRequest", "the namespace of the object does not match the request")
            meta["namespace"] = route.namespace
        uid = str(uuid.uuid4())
        if res.plural == "jobs":
            body = admit_job(body)
            label_job(body, uid)
        elif not meta.get("name"):
            raise ApiError(422, "Invalid", f"{res.kind} is invalid: metadata.name: Required value")
        if query_flag(request.query.get("dryRun")) or request.query.get("dryRun") == "All":
            return _json(body, 201)
        obj = self.store.create(res.plural, body, uid)
        if res.plural == "jobs":
            obj = self.controller.job_created(obj)
        return _json(obj, 201)

    async def _patch(self, request: web.Request, route: Route) -> web.Response:
        res, ns, name = route.resource, route.namespace or "", route.name
        if name is None or route.subresource is not None:
            raise ApiError(405, "MethodNotAllowed", "only a Job itself can be patched on the spoke simulator")
        try:
            patch = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ApiError(400, "BadRequest", "the request body is not valid JSON") from None
        current = self.store.get(res.plural, ns, name)
        after = patched_job(current, patch, request.headers.get("Content-Type", ""))
        if query_flag(request.query.get("dryRun")) or request.query.get("dryRun") == "All":
            return _json(after)
        return _json(self.controller.job_patched(current, after))

    async def _delete(self, request: web.Request, route: Route) -> web.Response:
        res, ns, name = route.resource, route.namespace or "", route.name
        if name is None:
            raise ApiError(
                405, "MethodNotAllowed", "deleting a collection is not supported by the spoke simulator"
            )
        propagation = request.query.get("propagationPolicy")
        precondition_uid = None
        if request.can_read_body:
            with contextlib.suppress(json.JSONDecodeError, UnicodeDecodeError):
                options = await request.json()
                if isinstance(options, dict):
                    propagation = options.get("propagationPolicy") or propagation
                    if options.get("orphanDependents") is True:
                        propagation = propagation or "Orphan"
                    precondition_uid = (options.get("preconditions") or {}).get("uid")
        if precondition_uid is not None:
            current = self.store.get(res.plural, ns, name)["metadata"]["uid"]
            if precondition_uid != current:
                raise ApiError(
                    409,
                    "Conflict",
                    f"Precondition failed: UID in precondition: {precondition_uid}, UID in object meta: {current}",
                    {"name": name, "group": res.group, "kind": res.plural},
                )
        if propagation not in (None, "Orphan", "Background", "Foreground"):
            raise ApiError(400, "BadRequest", f"unsupported propagationPolicy {propagation!r}")
        if res.plural == "jobs":
            # Like the API server: a Job deleted without a policy orphans its pods.
            obj = self.controller.delete_job(ns, name, propagation or "Orphan")
        elif res.plural == "pods":
            return _json(self.controller.delete_pod(ns, name))
        elif res.plural == "namespaces":
            if self.store.find("namespaces", "", name) is None:
                raise not_found(res, name)
            for job in self.store.list("jobs", name):
                self.controller.delete_job(name, job["metadata"]["name"], "Background")
            for pod in self.store.list("pods", name):
                self.controller.delete_pod(name, pod["metadata"]["name"])
            return _json(self.store.delete("namespaces", "", name))
        else:
            obj = self.store.delete(res.plural, ns, name)
        return _json(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {
                    "name": name,
                    "group": res.group,
                    "kind": res.plural,
                    "uid": obj["metadata"]["uid"],
                },
            }
        )

    async def _watch(self, request: web.Request, route: Route) -> web.StreamResponse:
        res = route.resource
        matches = self._selectors(request)
        if route.name is not None:
            name = route.name
            inner = matches
            matches = lambda obj: obj["metadata"]["name"] == name and inner(obj)  # noqa: E731
        raw_rv = request.query.get("resourceVersion") or ""
        since = int(raw_rv) if raw_rv.isdigit() and raw_rv != "0" else None
        initial_events = query_flag(request.query.get("sendInitialEvents"))
        bookmarks = query_flag(request.query.get("allowWatchBookmarks"))
        timeout = float(request.query.get("timeoutSeconds") or 1800)
        response = web.StreamResponse(headers={"Content-Type": JSON})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            watcher = self.store.watch(res.plural, route.namespace, matches, since)
        except ApiError as err:
            await self._send(response, {"type": "ERROR", "object": err.status()})
            return response
        try:
            if since is None:
                for _ in range(watcher.queue.qsize()):
                    event = watcher.queue.get_nowait()
                    await self._send(response, {"type": event.type, "object": event.obj})
                if initial_events:
                    await self._send(response, _bookmark(res, self.store.rv, initial_events_end=True))
            await self._stream(response, watcher, res, bookmarks, time.monotonic() + timeout)
        except (ConnectionResetError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.store.unwatch(watcher)
        return response

    async def _stream(
        self, response: web.StreamResponse, watcher: Watcher, res: Resource, bookmarks: bool, deadline: float
    ) -> None:
        while not self.closing.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                event: WatchEvent | None = await asyncio.wait_for(
                    watcher.queue.get(), min(left, self.bookmark_seconds)
                )
            except TimeoutError:
                if bookmarks:
                    await self._send(response, _bookmark(res, self.store.rv))
                continue
            if event is None:
                if watcher.expired:
                    gone = ApiError(410, "Expired", "too old resource version: the watch cache was compacted")
                    await self._send(response, {"type": "ERROR", "object": gone.status()})
                return
            await self._send(response, {"type": event.type, "object": event.obj})

    async def _send(self, response: web.StreamResponse, event: Obj) -> None:
        if not self.outage.ended.is_set():
            await self._wait_out_outage()
        await response.write(json.dumps(event, separators=(",", ":")).encode() + b"\n")

    # Admin ---------------------------------------------------------------------------------------------

    async def admin(self, request: web.Request) -> web.Response:
        path = request.path.rstrip("/")
        body: dict[str, Any] = {}
        if request.can_read_body:
            with contextlib.suppress(json.JSONDecodeError, UnicodeDecodeError):
                body = await request.json() or {}
        try:
            if path == "/_sim/state" and request.method == "GET":
                return _json(self.state())
            if path == "/_sim/outage" and request.method == "POST":
                self.outage.start(body.get("mode", "hang"), body.get("seconds"))
                log.info("outage started", extra={"spoke": self.name, "mode": self.outage.mode})
                return _json(self.state())
            if path == "/_sim/outage" and request.method == "DELETE":
                self.outage.end()
                log.info("outage ended", extra={"spoke": self.name})
                return _json(self.state())
            if path == "/_sim/faults" and request.method == "POST":
                fault = Fault(
                    status=int(body.get("status", 500)),
                    count=int(body.get("count", 1)),
                    verbs=tuple(body.get("verbs") or ()),
                    resource=str(body.get("resource", "")),
                    delay_seconds=float(body.get("delay_seconds", 0)),
                    after_commit=bool(body.get("after_commit", False)),
                )
                self.faults.append(fault)
                return _json(self.state())
            if path == "/_sim/expire-watches" and request.method == "POST":
                return _json({"expired": self.store.expire_watches()})
            if path.startswith("/_sim/nodes/") and path.endswith("/ready") and request.method == "POST":
                node = path[len("/_sim/nodes/") : -len("/ready")]
                return _json(self.controller.set_node_ready(node, bool(body.get("ready", True))))
        except ApiError as err:
            return _error(err)
        except (TypeError, ValueError) as err:
            return _json({"error": str(err)}, 400)
        return _json({"error": f"no admin route {request.method} {path}"}, 404)

    def state(self) -> Obj:
        return {
            "name": self.name,
            "resourceVersion": self.store.rv,
            "outage": self.outage.mode,
            "faults": len(self.faults),
            "watches": len(self.store.watchers),
            "counts": {res: len(objs) for res, objs in self.store.objects.items()},
        }


def _bookmark(res: Resource, rv: int, initial_events_end: bool = False) -> Obj:
    meta: Obj = {"resourceVersion": str(rv)}
    if initial_events_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    return {"type": "BOOKMARK", "object": {"kind": res.kind, "apiVersion": res.api_version, "metadata": meta}}
