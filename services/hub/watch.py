"""WatchAppWrappers: replay from the store, then live changes from every commit.

A watch first subscribes to live changes, then replays, then sends a bookmark, then streams live changes:

- since_revision = 0: the current state of every matching AppWrapper (ADDED), read page by page;
- since_revision = N: every change after N from the change log, in revision order (FAILED_PRECONDITION if
  N is older than the log keeps: the client starts again from 0).

Live changes that the replay already covered are skipped by revision, so nothing is lost or repeated
between the two.

With a phase filter a watcher sees an AppWrapper enter and leave it, as a Kubernetes watch with a selector
does: a change into a watched phase from another is ADDED, a change out of the watched phases is DELETED
(carrying the new state, so the client sees where it went), and changes outside are not sent.

Fan-out never slows a writer: a commit appends its changes to one shared log (the newest `queue_size`), wakes
the waiting watchers and returns, whatever their number; each watcher filters and sends from its own position.
A watcher that falls more than `queue_size` changes behind is ended with RESOURCE_EXHAUSTED naming the revision
to resume from. While a submission or cancel is in flight, watchers that wake wait up to `writer_grace`
seconds for it to finish before sending, so a thousand watchers do not hold back a bulk submission; they then
send all they have. Streams are limited in number, in all and per tenant (RESOURCE_EXHAUSTED past either); a watch of every
tenant (an admin's) counts in the global limit only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from caspian.v1 import common_pb2
from services.common.errors import ResourceExhausted, Unavailable
from services.hub.store import Change, ChangeKind, ListQuery, RevisionCompacted, Store

BOOKMARK = 4  # caspian.v1.WatchEventType.WATCH_EVENT_TYPE_BOOKMARK
_PAGE = 500


@dataclass(frozen=True)
class WatchEvent:
    kind: int  # ChangeKind value, or BOOKMARK
    revision: int
    app_wrapper: common_pb2.AppWrapper | None = None


class Subscription:
    """One watcher's place in the broadcaster's log and its filter."""

    def __init__(self, broadcaster: Broadcaster, phases: Sequence[int], tenant: str, position: int):
        self.broadcaster = broadcaster
        self.phases = frozenset(phases)
        self.tenant = tenant
        self.position = position  # absolute index of the next change to read

    def matches(self, change: Change) -> bool:
        if self.tenant and change.app_wrapper.tenant != self.tenant:
            return False
        return seen_as(change, self.phases) is not None

    @property
    def overflowed(self) -> bool:
        return self.position < self.broadcaster.first_position

    def available(self) -> list[Change]:
        """The matching changes published since the last call (after an overflow: none)."""
        log = self.broadcaster.log
        first = self.broadcaster.first_position
        end = first + len(log)
        if self.position < first:
            return []
        found = [log[i - first] for i in range(self.position, end)]
        self.position = end
        return [change for change in found if self.matches(change)]


class Broadcaster:
    """Fans committed changes out to watchers; `committed_revision` is the newest revision published."""

    def __init__(
        self,
        queue_size: int = 10_000,
        *,
        max_watchers: int = 256,
        max_watchers_per_tenant: int = 32,
        writer_grace: float = 0.5,
    ):
        self.queue_size = queue_size
        self.max_watchers = max_watchers
        self.max_watchers_per_tenant = max_watchers_per_tenant
        self.writer_grace = writer_grace
        self.committed_revision = 0
        self.log: deque[Change] = deque(maxlen=queue_size)
        self.first_position = 0
        self.closed = False
        self._subscriptions: set[Subscription] = set()
        self._per_tenant: Counter[str] = Counter()
        self._published = asyncio.Event()
        self._writers = 0
        self._writers_done = asyncio.Event()
        self._writers_done.set()
        self._writing = _Writing(self)

    @classmethod
    def from_settings(cls, settings) -> Broadcaster:
        return cls(
            settings.watch_queue_size,
            max_watchers=settings.watch_max_streams,
            max_watchers_per_tenant=settings.watch_max_streams_per_tenant,
            writer_grace=settings.watch_writer_grace_seconds,
        )

    @property
    def watchers(self) -> int:
        return len(self._subscriptions)

    @property
    def end_position(self) -> int:
        return self.first_position + len(self.log)

    def publish(self, changes: Sequence[Change]) -> None:
        if not changes:
            return
        self.committed_revision = max(self.committed_revision, changes[-1].revision)
        if not self._subscriptions:
            return
        dropped = max(0, len(self.log) + len(changes) - self.queue_size)
        self.log.extend(changes)
        self.first_position += dropped
        self._wake()

    def _wake(self) -> None:
        self._published.set()
        self._published = asyncio.Event()

    async def next_changes(self, subscription: Subscription) -> list[Change] | None:
        """The next matching changes for `subscription`; None once the broadcaster is closed and drained.

        Raises ResourceExhausted when the subscription fell out of the log."""
        while True:
            if subscription.overflowed:
                raise ResourceExhausted(f"watch fell more than {self.queue_size} changes behind")
            changes = subscription.available()
            if changes:
                return changes
            if self.closed:
                return None
            await self._published.wait()
            if self._writers:
                # Let the submission that woke us finish first; then send everything at once.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._writers_done.wait(), self.writer_grace)

    def writing(self) -> _Writing:
        """Around a write RPC: watchers hold their sends while any is in flight (up to writer_grace)."""
        return self._writing

    def _enter_write(self) -> None:
        self._writers += 1
        self._writers_done.clear()

    def _exit_write(self) -> None:
        self._writers -= 1
        if not self._writers:
            self._writers_done.set()

    def subscribe(self, phases: Sequence[int], tenant: str) -> Subscription:
        if self.closed:
            raise Unavailable("the hub is shutting down; watch again from your last revision")
        if len(self._subscriptions) >= self.max_watchers:
            raise ResourceExhausted(
                f"the hub serves at most {self.max_watchers} watch streams at once "
                "(CASPIAN_HUB_WATCH_MAX_STREAMS); retry later or share one stream"
            )
        # A watch of every tenant (an admin's, or any on a hub without tokens) counts in the global limit only.
        if tenant and self._per_tenant[tenant] >= self.max_watchers_per_tenant:
            raise ResourceExhausted(
                f"tenant {tenant!r} may hold at most {self.max_watchers_per_tenant} watch streams at once "
                "(CASPIAN_HUB_WATCH_MAX_STREAMS_PER_TENANT)"
            )
        subscription = Subscription(self, phases, tenant, self.end_position)
        self._subscriptions.add(subscription)
        self._per_tenant[tenant] += 1
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.discard(subscription)
            self._per_tenant[subscription.tenant] -= 1
            if not self._per_tenant[subscription.tenant]:
                del self._per_tenant[subscription.tenant]
        if not self._subscriptions:
            self.first_position = self.end_position
            self.log.clear()

    def close(self) -> None:
        """End every watch: each stream finishes cleanly after what was published before."""
        self.closed = True
        self._wake()


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
            try:
                live = await broadcaster.next_changes(subscription)
            except ResourceExhausted:
                raise ResourceExhausted(
                    f"watch fell more than {broadcaster.queue_size} changes behind; resume from revision "
                    f"{delivered}"
                ) from None
            if live is None:
                return
            for change in live:
                if change.revision <= delivered or change.revision <= seen.get(change.app_wrapper.id, 0):
                    continue
                delivered = change.revision
                kind = seen_as(change, subscription.phases)
                assert kind is not None  # the subscription passes only the changes it matches
                yield WatchEvent(kind, change.revision, change.app_wrapper)
    finally:
        broadcaster.unsubscribe(subscription)


class _Writing:
    """`Broadcaster.writing()`: a plain context manager, since it wraps every submission (a generator-based one
    costs a few microseconds per call)."""

    __slots__ = ("_broadcaster",)

    def __init__(self, broadcaster: Broadcaster):
        self._broadcaster = broadcaster

    def __enter__(self) -> None:
        self._broadcaster._enter_write()

    def __exit__(self, *_exc: object) -> None:
        self._broadcaster._exit_write()
