"""Live updates for an open page: server-sent events fed by WatchAppWrappers and WatchIntensities.

Changes are coalesced per AppWrapper over a short window (`batch_seconds`), so a burst of 10,000 changes to
the same jobs reaches the browser as a few batches holding each job's newest state once. Each page gets its
own watch with the caller's token: the hub scopes it, so a tenant's stream never holds another tenant's job.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
from aiohttp import web

from caspian.v1 import hub_pb2
from services.console.gateway import Gateway
from services.console.metrics import ConsoleMetrics
from services.console.views import job_view, point_view, seconds

log = logging.getLogger("caspian.console.live")

ADDED, DELETED, BOOKMARK = (
    hub_pb2.WATCH_EVENT_TYPE_ADDED,
    hub_pb2.WATCH_EVENT_TYPE_DELETED,
    hub_pb2.WATCH_EVENT_TYPE_BOOKMARK,
)
# Statuses after which the watch resumes from the last revision; others end the stream with an error event.
RESUMABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.CANCELLED,
    }
)


@dataclass
class Coalescer:
    """Pending changes: the newest state of each job, and the newest point of each zone."""

    jobs: dict[str, dict | None] = field(default_factory=dict)
    points: dict[str, dict] = field(default_factory=dict)
    synced: bool = False
    # Set when the hub's initial replay is complete (its bookmark arrived).
    replayed: asyncio.Event = field(default_factory=asyncio.Event)
    changes_seen: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def job(self, app_wrapper_id: str, view: dict | None) -> None:
        # Re-insert so that a job changed again moves to the back of the send order.
        self.jobs.pop(app_wrapper_id, None)
        self.jobs[app_wrapper_id] = view
        self.changes_seen += 1
        self.wake.set()

    def take_jobs(self, limit: int) -> tuple[list[dict], list[str]]:
        updated: list[dict] = []
        removed: list[str] = []
        while self.jobs and len(updated) + len(removed) < limit:
            key = next(iter(self.jobs))
            view = self.jobs.pop(key)
            if view is None:
                removed.append(key)
            else:
                updated.append(view)
        return updated, removed


def compact(view: dict) -> dict:
    """A job view without its unset fields (the page reads a missing one as unset): a third less to send."""
    return {k: v for k, v in view.items() if k == "labels" or (v is not None and v != "" and v != 0)}


def sse(event: str, data: object) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class LiveStream:
    def __init__(
        self,
        gateway: Gateway,
        token: str,
        *,
        batch_seconds: float,
        batch_max_jobs: int,
        clock_seconds: float,
        observe: Callable[[hub_pb2.GetStatsResponse], None] = lambda stats: None,
        metrics: ConsoleMetrics | None = None,
    ):
        self.gateway = gateway
        self.metrics = metrics
        self.observe = observe
        self.token = token
        self.batch_seconds = batch_seconds
        self.batch_max_jobs = batch_max_jobs
        self.clock_seconds = clock_seconds
        self.pending = Coalescer()
        self.outbox: asyncio.Queue[bytes] = asyncio.Queue()

    async def watch_jobs(self) -> None:
        revision, backoff = 0, 0.2
        while True:
            try:
                async for event in self.gateway.watch(self.token, revision):
                    backoff = 0.2
                    if event.type == BOOKMARK:
                        revision = max(revision, event.revision)
                        if not self.pending.synced:
                            self.pending.synced = True
                            self.pending.replayed.set()
                            self.pending.wake.set()
                        continue
                    revision = max(revision, event.revision)
                    aw = event.app_wrapper
                    self.pending.job(aw.id, None if event.type == DELETED else compact(job_view(aw)))
                    if self.metrics is not None:
                        self.metrics.changes.inc()
                return
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
                if code == grpc.StatusCode.FAILED_PRECONDITION:
                    # The hub compacted past our revision: start again from the current state.
                    revision = 0
                    self.pending.synced = False
                    self.pending.replayed.clear()
                    await self.outbox.put(sse("reset", {}))
                    continue
                if code not in RESUMABLE:
                    await self.outbox.put(sse("failure", {"code": code.name, "message": exc.details() or ""}))
                    return
                log.info("job watch interrupted; resuming", extra={"code": code.name, "revision": revision})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def watch_intensities(self) -> None:
        backoff = 0.5
        while True:
            try:
                async for response in self.gateway.watch_intensities([]):
                    backoff = 0.5
                    point = point_view(response.point)
                    point["stale"] = response.source.stale
                    self.pending.points[response.point.zone] = point
                    self.pending.wake.set()
                return
            except grpc.aio.AioRpcError as exc:
                log.info("intensity watch interrupted", extra={"code": exc.code().name})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    async def tick_clock(self) -> None:
        while True:
            try:
                stats = await self.gateway.stats(self.token)
                self.observe(stats)
                await self.outbox.put(sse("clock", clock_view(stats)))
            except grpc.aio.AioRpcError as exc:
                await self.outbox.put(sse("clock", {"error": exc.code().name}))
            await asyncio.sleep(self.clock_seconds)

    async def flush(self) -> None:
        """Every `batch_seconds`, one `jobs` event with the newest state of each changed job."""
        announced = False
        while True:
            await self.pending.wake.wait()
            self.pending.wake.clear()
            if announced:
                await asyncio.sleep(self.batch_seconds)
            elif not self.pending.synced:
                # Coalesce the replay too, but stop waiting the moment it is complete.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.pending.replayed.wait(), self.batch_seconds)
            while self.pending.jobs:
                updated, removed = self.pending.take_jobs(self.batch_max_jobs)
                await self.outbox.put(sse("jobs", {"updated": updated, "removed": removed}))
                if self.metrics is not None:
                    self.metrics.batches.inc()
                    self.metrics.jobs_sent.inc(len(updated) + len(removed))
            if self.pending.points:
                points, self.pending.points = self.pending.points, {}
                await self.outbox.put(sse("intensity", points))
            if self.pending.synced and not announced:
                announced = True
                await self.outbox.put(sse("synced", {}))
            elif not self.pending.synced:
                announced = False

    async def run(self, response: web.StreamResponse, *, jobs: bool = True) -> None:
        workers = [self.tick_clock(), self.watch_intensities(), self.flush()]
        if jobs:
            workers.append(self.watch_jobs())
        tasks = [asyncio.ensure_future(w) for w in workers]
        if self.metrics is not None:
            self.metrics.streams.inc()
        try:
            while True:
                try:
                    chunk = await asyncio.wait_for(self.outbox.get(), timeout=15)
                except TimeoutError:
                    chunk = b": keep-alive\n\n"
                await response.write(chunk)
        except ConnectionResetError:
            pass  # the page went away
        finally:
            if self.metrics is not None:
                self.metrics.streams.dec()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task


def clock_view(stats: hub_pb2.GetStatsResponse) -> dict:
    view: dict[str, object] = {
        "now": seconds(stats, "now"),
        "emitted_gco2": stats.emitted_gco2,
        "counterfactual_gco2": stats.counterfactual_gco2,
        "avoided_gco2": stats.avoided_gco2,
    }
    if stats.HasField("last_cycle"):
        cycle = stats.last_cycle
        view["cycle"] = {
            "cycle": cycle.cycle,
            "gap": cycle.gap if cycle.HasField("gap") else None,
            "notes": list(cycle.notes),
        }
    return view
