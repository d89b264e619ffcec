"""WatchAppWrappers: replay from the store, then live changes from every commit.

A watch first subscribes to live changes, then replays, then sends a bookmark, then streams live changes:

- since_revision = 0: the current state of every matching AppWrapper (ADDED), read page by page;
- since_revision = N: every change after N from the change log, in revision order (FAILED_PRECONDITION if
  N is older than the log keeps: the client starts again from 0).

Live changes that the replay already covered are skipped by revision, so nothing is lost or repeated
between the two.

With a phase filter a watcher sees an AppWrapper enter and leave it, as a Kubernetes watch with a selector
does: a change into a watched phase from another is ADDED, a change out of the watched phases is DELETED
(carrying the new state, so the client sees where it went), and changes outside are not sent. A watcher that falls `queue_size` events behind is ended with RESOURCE_EXHAUSTED naming the
revision to resume from; a slow client never holds back the hub.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from caspian.v1 import common_pb2
from services.common.errors import ResourceExhausted
from services.hub.store import Change, ChangeKind, ListQuery, RevisionCompacted, Store

BOOKMARK = 4  # caspian.v1.WatchEventType.WATCH_EVENT_TYPE_BOOKMARK
_PAGE = 500


@dataclass(frozen=True)
class WatchEvent:
    kind: int  # ChangeKind value, or BOOKMARK
    revision: int
    app_wrapper: common_pb2.AppWrapper | None = None


class Subscription:
    def __init__(self, phases: Sequence[int], tenant: str, queue_size: int):
        self.phases = frozenset(phases)
        self.tenant = tenant
        # One slot beyond the limit for the end-of-stream marker.
        self.queue: asyncio.Queue[Change | None] = asyncio.Queue(queue_size + 1)
        self.overflowed = False
        self.closed = False

    def matches(self, change: Change) -> bool:
        if self.tenant and change.app_wrapper.tenant != self.tenant:
            return False
        return seen_as(change, self.phases) is not None

    def offer(self, change: Change) -> None:
        if self.overflowed or self.closed or not self.matches(change):
            return
        if self.queue.qsize() >= self.queue.maxsize - 1:
            self.overflowed = True
            # Wake the reader so it notices.
            with contextlib.suppress(asyncio.QueueFull):
                self.queue.put_nowait(None)
            return
        self.queue.put_nowait(change)


class Broadcaster:
    """Fans committed changes out to watchers; `committed_revision` is the newest revision published."""

    def __init__(self, queue_size: int = 10_000):
        self.queue_size = queue_size
        self.committed_revision = 0
        self._subscriptions: set[Subscription] = set()

    @property
    def watchers(self) -> int:
        return len(self._subscriptions)

    def publish(self, changes: Sequence[Change]) -> None:
        for change in changes:
            for subscription in self._subscriptions:
                subscription.offer(change)
        if changes:
            self.committed_revision = max(self.committed_revision, changes[-1].revision)

    def subscribe(self, phases: Sequence[int], tenant: str) -> Subscription:
        subscription = Subscription(phases, tenant, self.queue_size)
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    def close(self) -> None:
        """End every watch: each stream finishes cleanly after what it has already queued."""
        for subscription in self._subscriptions:
            subscription.closed = True
            with contextlib.suppress(asyncio.QueueFull):
                subscription.queue.put_nowait(None)


def seen_as(change: Change, phases: frozenset[int]) -> ChangeKind | None:
    """The event a watcher of `phases` (empty: all) gets for `change`, or None when it gets none."""
    if not phases:
        return change.kind
    now_in = change.app_wrapper.status.phase in phases
    if change.kind != ChangeKind.MODIFIED:
        return change.kind if now_in else None
    was_in = change.previous_phase in phases
    if now_in:
        return ChangeKind.MODIFIED if was_in else ChangeKind.ADDED
    return ChangeKind.DELETED if was_in else None


async def watch(
    store: Store, broadcaster: Broadcaster, since: int, phases: Sequence[int], tenant: str
) -> AsyncIterator[WatchEvent]:
    subscription = broadcaster.subscribe(phases, tenant)
    try:
        # Everything at or below this revision is committed and visible to the replay's reads; everything
        # above it reaches the subscription.
        snapshot = broadcaster.committed_revision
        delivered = since
        seen: dict[str, int] = {}
        if since <= 0:
            after = 0
            while True:
                page = await store.list_app_wrappers(
                    ListQuery(phases=tuple(phases), tenant=tenant, after_seq=after, limit=_PAGE)
                )
                for message in page.items:
                    seen[message.id] = message.revision
                    yield WatchEvent(ChangeKind.ADDED, message.revision, message)
                if page.next_after_seq is None:
                    break
                after = page.next_after_seq
            # Pages may show states newer than the snapshot; `seen` skips the live changes they include.
            delivered = snapshot
        else:
            compacted = await store.compacted_through()
            if since < compacted:
                raise RevisionCompacted(
                    f"revision {since} is compacted (history starts after {compacted}); watch from 0",
                    field="since_revision",
                )
            watched = frozenset(phases)
            while True:
                changes = await store.changes_since(delivered, _PAGE, phases, tenant)
                for change in changes:
                    kind = seen_as(change, watched)
                    if kind is not None:
                        yield WatchEvent(kind, change.revision, change.app_wrapper)
                    delivered = change.revision
                if len(changes) < _PAGE:
                    break
            delivered = max(delivered, snapshot)
        yield WatchEvent(BOOKMARK, delivered)
        while True:
            change = await subscription.queue.get()
            if change is None and subscription.closed:
                return
            if subscription.overflowed:
                raise ResourceExhausted(
                    f"watch fell more than {broadcaster.queue_size} events behind; resume from revision "
                    f"{delivered}"
                )
            if change.revision <= delivered or change.revision <= seen.get(change.app_wrapper.id, 0):
                continue
            delivered = change.revision
            yield WatchEvent(seen_as(change, subscription.phases), change.revision, change.app_wrapper)
    finally:
        broadcaster.unsubscribe(subscription)
