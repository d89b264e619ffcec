"""The store as a leader's scheduling code sees it: every write that can be fenced carries the leader's fence.

The scheduling loop and the job-event reconciler are handed this instead of the store, so each of their
writes is refused (`Fenced`) once another replica has taken the lease, whatever the code that makes it.
Reads, and writes no leader owns (submissions, clusters), pass through unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from services.hub.store.protocols import Store
from services.hub.store.records import AppWrapperRecord, Fence, Fenced, IntensityRow, Update

T = TypeVar("T")


class FencedStore:
    """`on_write(fence)`, if given, is called as each fenced write begins and returns what to call with whether
    the store accepted it (refused: `Fenced`), for the leader's metrics."""

    def __init__(
        self,
        store: Store,
        fence: Callable[[], Fence],
        on_write: Callable[[Fence], Callable[[bool], None]] | None = None,
    ):
        self._store = store
        self._fence = fence
        self._on_write = on_write

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def _fenced(self, write: Callable[[Fence], Awaitable[T]], fence: Fence | None) -> T:
        fence = fence or self._fence()
        if self._on_write is None:
            return await write(fence)
        answered = self._on_write(fence)
        try:
            result = await write(fence)
        except Fenced:
            answered(False)
            raise
        answered(True)
        return result

    async def update_app_wrappers(
        self, updates: Sequence[Update], *, fence: Fence | None = None
    ) -> list[AppWrapperRecord | None]:
        return await self._fenced(lambda f: self._store.update_app_wrappers(updates, fence=f), fence)

    async def collect_finished(self, before: float, limit: int = 1000, *, fence: Fence | None = None) -> int:
        return await self._fenced(lambda f: self._store.collect_finished(before, limit, fence=f), fence)

    async def compact(self, keep: int, *, fence: Fence | None = None) -> int:
        return await self._fenced(lambda f: self._store.compact(keep, fence=f), fence)

    async def next_cycle(self, *, fence: Fence | None = None) -> int:
        return await self._fenced(lambda f: self._store.next_cycle(fence=f), fence)

    async def save_intensities(
        self, rows: Sequence[IntensityRow], keep_after: float, *, fence: Fence | None = None
    ) -> None:
        await self._fenced(lambda f: self._store.save_intensities(rows, keep_after, fence=f), fence)
