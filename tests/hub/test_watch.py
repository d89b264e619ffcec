"""WatchAppWrappers: current state then live changes, resume from a revision, compaction, slow watchers."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from caspian.v1 import common_pb2, hub_pb2
from services.common.errors import ResourceExhausted
from services.hub.store import Change, ChangeKind
from services.hub.watch import BOOKMARK, Broadcaster, watch

Phase = common_pb2.AppWrapperPhase
T = hub_pb2.WatchEventType


class Watcher:
    """Copies a watch stream into a queue (the grpc examples' pattern) until cancelled."""

    def __init__(self, stub, request):
        self.queue: asyncio.Queue = asyncio.Queue()
        self.call = stub.WatchAppWrappers(request, timeout=60)
        self.task = asyncio.ensure_future(self._pump())

    async def _pump(self):
        try:
            async for event in self.call:
                await self.queue.put(event)
        except grpc.aio.AioRpcError as exc:
            await self.queue.put(exc)

    async def next(self) -> hub_pb2.WatchAppWrappersResponse:
        item = await asyncio.wait_for(self.queue.get(), 10)
        if isinstance(item, Exception):
            raise item
        return item

    async def until_bookmark(self) -> list[hub_pb2.WatchAppWrappersResponse]:
        events = []
        while True:
            event = await self.next()
            if event.type == T.WATCH_EVENT_TYPE_BOOKMARK:
                return events + [event]
            events.append(event)

    def close(self):
        self.call.cancel()
        self.task.cancel()


async def test_watch_from_zero_then_live(harness):
    await harness.register_clusters()
    await harness.submit(id="before")
    watcher = Watcher(harness.stub, hub_pb2.WatchAppWrappersRequest())
    try:
        replay = await watcher.until_bookmark()
        assert [(e.type, e.app_wrapper.id) for e in replay[:-1]] == [(T.WATCH_EVENT_TYPE_ADDED, "before")]
        assert replay[-1].revision >= replay[0].revision
        await harness.submit(id="after")
        added = await watcher.next()
        assert (added.type, added.app_wrapper.id) == (T.WATCH_EVENT_TYPE_ADDED, "after")
        await harness.cycle()
        seen = {}
        while len(seen) < 2 or any(p != Phase.APP_WRAPPER_PHASE_DISPATCHING for p in seen.values()):
            event = await watcher.next()
            assert event.type == T.WATCH_EVENT_TYPE_MODIFIED and event.revision > added.revision
            seen[event.app_wrapper.id] = event.app_wrapper.status.phase
    finally:
        watcher.close()


async def test_resume_from_a_revision_delivers_every_missed_change_once(harness):
    await harness.register_clusters()
    watcher = Watcher(harness.stub, hub_pb2.WatchAppWrappersRequest())
    await watcher.until_bookmark()
    await harness.submit(id="one")
    first = await watcher.next()
    watcher.close()

    # Changes while nobody watches: a submission, a plan, a gate, a cancel.
    await harness.submit(id="two")
    await harness.cycle()
    await harness.stub.CancelAppWrapper(hub_pb2.CancelAppWrapperRequest(id="one"), timeout=10)

    resumed = Watcher(harness.stub, hub_pb2.WatchAppWrappersRequest(since_revision=first.revision))
    try:
        replay = await resumed.until_bookmark()
        changes = replay[:-1]
        revisions = [e.revision for e in changes]
        assert revisions == sorted(revisions) and len(set(revisions)) == len(revisions)
        assert all(r > first.revision for r in revisions)
        assert changes[0].type == T.WATCH_EVENT_TYPE_ADDED and changes[0].app_wrapper.id == "two"
        one = [e.app_wrapper.status.phase for e in changes if e.app_wrapper.id == "one"]
        two = [e.app_wrapper.status.phase for e in changes if e.app_wrapper.id == "two"]
        # Every intermediate state, not only the last.
        assert _distinct(one) == [
            Phase.APP_WRAPPER_PHASE_SCHEDULED,
            Phase.APP_WRAPPER_PHASE_DISPATCHING,
            Phase.APP_WRAPPER_PHASE_CANCELLED,
        ]
        assert _distinct(two) == [
            Phase.APP_WRAPPER_PHASE_PENDING,
            Phase.APP_WRAPPER_PHASE_SCHEDULED,
            Phase.APP_WRAPPER_PHASE_DISPATCHING,
        ]
        assert replay[-1].revision == revisions[-1]
        await harness.submit(id="three")
        live = await resumed.next()
        assert live.app_wrapper.id == "three" and live.revision > replay[-1].revision
    finally:
        resumed.close()


def _distinct(phases):
    return [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] != p]


async def test_watch_filters_by_phase_and_tenant(harness):
    await harness.register_clusters()
    await harness.submit(id="a1", tenant="team-a")
    await harness.submit(id="b1", tenant="team-b")
    by_tenant = Watcher(harness.stub, hub_pb2.WatchAppWrappersRequest(tenant="team-b"))
    cancelled = Watcher(
        harness.stub,
        hub_pb2.WatchAppWrappersRequest(phases=[Phase.APP_WRAPPER_PHASE_CANCELLED], since_revision=1),
    )
    try:
        replay = await by_tenant.until_bookmark()
        assert [e.app_wrapper.id for e in replay[:-1]] == ["b1"]
        assert (await cancelled.until_bookmark())[:-1] == []
        await harness.submit(id="b2", tenant="team-b")
        await harness.stub.CancelAppWrapper(hub_pb2.CancelAppWrapperRequest(id="a1"), timeout=10)
        assert (await by_tenant.next()).app_wrapper.id == "b2"
        event = await cancelled.next()
        assert (event.app_wrapper.id, event.app_wrapper.status.phase) == (
            "a1",
            Phase.APP_WRAPPER_PHASE_CANCELLED,
        )
    finally:
        by_tenant.close()
        cancelled.close()


async def test_a_phase_filter_sees_appwrappers_enter_and_leave_it(harness):
    await harness.register_clusters()
    pending = [Phase.APP_WRAPPER_PHASE_PENDING]
    live = Watcher(harness.stub, hub_pb2.WatchAppWrappersRequest(phases=pending))
    try:
        assert (await live.until_bookmark())[:-1] == []
        first = (await harness.submit(id="p1")).revision
        await harness.cycle()  # planned (then dispatched): it leaves Pending
        seen = [await live.next() for _ in range(2)]
        assert [(e.type, e.app_wrapper.id, e.app_wrapper.status.phase) for e in seen] == [
            (T.WATCH_EVENT_TYPE_ADDED, "p1", Phase.APP_WRAPPER_PHASE_PENDING),
            # DELETED from the watcher's view, carrying where it went.
            (T.WATCH_EVENT_TYPE_DELETED, "p1", Phase.APP_WRAPPER_PHASE_SCHEDULED),
        ]
        # Later changes outside the filter are not sent; resuming from the log gives the same events.
        resumed = Watcher(
            harness.stub, hub_pb2.WatchAppWrappersRequest(phases=pending, since_revision=first - 1)
        )
        try:
            replay = await resumed.until_bookmark()
            assert [(e.type, e.app_wrapper.status.phase) for e in replay[:-1]] == [
                (e.type, e.app_wrapper.status.phase) for e in seen
            ]
        finally:
            resumed.close()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(live.queue.get(), 0.3)
    finally:
        live.close()


async def test_resume_from_a_compacted_revision_is_failed_precondition(make_harness):
    harness = await make_harness(watch_history=3)
    await harness.register_clusters()
    for i in range(6):
        await harness.submit(id=f"c-{i}")
    await harness.cycle()  # compacts the change log to the newest 3 revisions
    watcher = Watcher(harness.stub, hub_pb2.WatchAppWrappersRequest(since_revision=1))
    try:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await watcher.next()
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "since_revision" in err.value.details()
    finally:
        watcher.close()


class _Store:
    """Just enough of the Store for watch(): an empty history."""

    async def list_app_wrappers(self, query):
        from services.hub.store import ListPage

        return ListPage([], None, 0)


async def test_a_watcher_that_falls_behind_is_told_where_to_resume():
    broadcaster = Broadcaster(queue_size=3)
    events = watch(_Store(), broadcaster, 0, (), "")
    assert (await anext(events)).kind == BOOKMARK
    for revision in range(1, 10):
        message = common_pb2.AppWrapper(id=f"x{revision}", revision=revision)
        broadcaster.publish([Change(revision, ChangeKind.ADDED, message)])
    with pytest.raises(ResourceExhausted, match="resume from revision 0"):
        await anext(events)
    await events.aclose()
    assert broadcaster.watchers == 0


async def test_shutdown_ends_watches_cleanly(harness):
    watcher = Watcher(harness.stub, hub_pb2.WatchAppWrappersRequest())
    await watcher.until_bookmark()
    harness.hub.end_watches()
    await asyncio.wait_for(watcher.task, 10)
    assert watcher.queue.empty()
