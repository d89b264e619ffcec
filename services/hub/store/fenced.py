"""The store as a leader's scheduling code sees it: every write that can be fenced carries the leader's fence.

The scheduling loop and the job-event reconciler are handed this instead of the store, so each of their
writes is refused (`Fenced`) once another replica has taken the lease, whatever the code that makes it.
Reads, and writes no leader owns (submissions, clusters), pass through unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from services.hub.store.protocols import Store
from services.hub.store.records import AppWrapperRecord, Fence, IntensityRow, Update


class FencedStore:
    def __init__(self, store: Store, fence: Callable[[], Fence]):
        self._store = store
        self._fence = fence

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def update_app_wrappers(
        self, updates: Sequence[Update], *, fence: Fence | None = None
    ) -> list[AppWrapperRecord | None]:
        return await self._store.update_app_wrappers(updates, fence=fence or self._fence())

    async def collect_finished(self, before: float, limit: int = 1000, *, fence: Fence | None = None) -> int:
        return await self._store.collect_finished(before, limit, fence=fence or self._fence())

    async def compact(self, keep: int, *, fence: Fence | None = None) -> int:
        return await self._store.compact(keep, fence=fence or self._fence())

    async def next_cycle(self, *, fence: Fence | None = None) -> int:
        return await self._store.next_cycle(fence=fence or self._fence())

    async def save_intensities(
        self, rows: Sequence[IntensityRow], keep_after: float, *, fence: Fence | None = None
    ) -> None:
        await self._store.save_intensities(rows, keep_after, fence=fence or self._fence())
