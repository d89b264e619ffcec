"""What the hub needs from durable state, one protocol per aggregate; every backend implements them all.

Every method is a coroutine safe to call from the event loop. A write returns once it is committed
(durable): nothing is acknowledged before. Writes the scheduling loop makes take `fence=`: the store refuses
them (`Fenced`) once another holder has taken the lease the fence names. A backend that cannot reach its
database raises `StoreUnavailable`; one that will not open (damaged, locked, unwritable) `StoreRefused`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from caspian.v1 import common_pb2
from services.hub.store.quarantine import QuarantineListener
from services.hub.store.records import (
    AppWrapperRecord,
    CarbonTotals,
    Change,
    CommitListener,
    Fence,
    InsertOutcome,
    IntensityRow,
    Lease,
    ListPage,
    ListQuery,
    NewAppWrapper,
    Update,
)


class StoreLifecycle(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...


class AppWrapperStore(Protocol):
    async def insert_app_wrappers(self, items: Sequence[NewAppWrapper]) -> list[InsertOutcome]: ...
    async def get_app_wrapper(self, app_wrapper_id: str) -> AppWrapperRecord | None: ...
    async def list_app_wrappers(self, query: ListQuery) -> ListPage: ...
    async def active_app_wrappers(self) -> list[AppWrapperRecord]: ...
    # What a gate pass may act on: Scheduled with the planned start at or before `now_s` (or none), and
    # phases.PAST_GATE; in submission order, like active_app_wrappers.
    async def gate_app_wrappers(self, now_s: float) -> list[AppWrapperRecord]: ...
    # The earliest planned start of a Scheduled AppWrapper after `after_s`, None if there is none.
    async def next_planned_start(self, after_s: float) -> float | None: ...
    async def app_wrappers_needing_accounting(self, limit: int = 1000) -> list[AppWrapperRecord]: ...
    async def app_wrappers_needing_cleanup(self, limit: int = 1000) -> list[AppWrapperRecord]: ...
    async def update_app_wrappers(
        self, updates: Sequence[Update], *, fence: Fence | None = None
    ) -> list[AppWrapperRecord | None]: ...
    async def phase_counts(self) -> dict[int, int]: ...
    async def collect_finished(
        self, before: float, limit: int = 1000, *, fence: Fence | None = None
    ) -> int: ...
    async def carbon_totals(self) -> CarbonTotals: ...

    # Rows whose record does not decode are set aside by every read and write that meets them
    # (quarantine.py); listeners hear (id, error) of each, once.
    quarantine_listeners: list[QuarantineListener]

    async def quarantine_app_wrappers(self, bad: Sequence[tuple[str, str]]) -> list[tuple[str, str]]: ...
    async def quarantined_count(self) -> int: ...


class ChangeLog(Protocol):
    def add_listener(self, listener: CommitListener) -> None:
        """Called on the event loop with committed changes, in revision order, each revision once."""

    @property
    def head_revision(self) -> int:
        """The newest revision this store has committed or delivered to its listeners."""

    async def changes_since(
        self, revision: int, limit: int, phases: Sequence[int] = (), tenant: str = ""
    ) -> list[Change]: ...
    async def compacted_through(self) -> int: ...
    async def compact(self, keep: int, *, fence: Fence | None = None) -> int: ...


class ClusterStore(Protocol):
    async def save_cluster(self, cluster: common_pb2.ClusterInfo) -> common_pb2.ClusterInfo: ...
    async def delete_cluster(self, name: str) -> bool: ...
    async def list_clusters(self) -> list[common_pb2.ClusterInfo]: ...


class CycleCounter(Protocol):
    async def next_cycle(self, *, fence: Fence | None = None) -> int: ...


class IntensityCache(Protocol):
    async def save_intensities(
        self, rows: Sequence[IntensityRow], keep_after: float, *, fence: Fence | None = None
    ) -> None: ...
    async def intensities(self, zone: str, start: float, end: float) -> list[IntensityRow]: ...


class LeaseStore(Protocol):
    async def acquire_or_renew(self, name: str, holder: str, now: float, ttl: float) -> Lease:
        """Take the lease if it is free or expired (a new epoch), renew it if `holder` has it; return it.

        The returned lease may name another holder: then `holder` is not the leader."""

    async def release(self, lease: Lease) -> bool:
        """Give the lease up early (at shutdown), so another replica need not wait for it to expire."""


class Store(
    StoreLifecycle,
    AppWrapperStore,
    ChangeLog,
    ClusterStore,
    CycleCounter,
    IntensityCache,
    LeaseStore,
    Protocol,
):
    """Everything the hub keeps durably."""
