"""The values the store takes and returns, shared by every backend."""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from caspian.v1 import common_pb2
from services.common.errors import ContractError, FailedPrecondition, Unavailable


class ChangeKind(enum.IntEnum):
    # Same numbers as caspian.v1.WatchEventType (pinned by a test).
    ADDED = 1
    MODIFIED = 2
    DELETED = 3


@dataclass
class AppWrapperRecord:
    """An AppWrapper and the hub's private bookkeeping about it."""

    message: common_pb2.AppWrapper
    # The carbon-agnostic placement (earliest start, least-loaded cluster), fixed at the first plan.
    baseline_cluster: str = ""
    baseline_start: float | None = None
    # Finished with a run whose actual gCO2 is still to be computed.
    needs_accounting: bool = False
    # Actual and counterfactual gCO2 are final and count in the totals.
    accounted: bool = False
    # Cancelled while a Job may still exist on a spoke: the Job must be deleted.
    needs_cleanup: bool = False
    # Hash of the spec as submitted, for idempotent retries.
    fingerprint: bytes = b""

    @property
    def id(self) -> str:
        return self.message.id

    @property
    def phase(self) -> int:
        return self.message.status.phase

    @property
    def revision(self) -> int:
        return self.message.revision


@dataclass(frozen=True)
class NewAppWrapper:
    message: common_pb2.AppWrapper
    # Hash of the submitted spec: a retry with the same id must carry the same one.
    fingerprint: bytes
    request_id: str = ""


@dataclass(frozen=True)
class InsertOutcome:
    record: AppWrapperRecord | None
    created: bool
    error: ContractError | None = None


@dataclass(frozen=True)
class Change:
    revision: int
    kind: ChangeKind
    app_wrapper: common_pb2.AppWrapper
    previous_phase: int = 0


# A mutation runs inside the write transaction with the current record; it returns False to leave it as is.
Mutation = Callable[[AppWrapperRecord], bool]


@dataclass(frozen=True)
class Update:
    id: str
    mutate: Mutation
    # Optimistic concurrency: skip the update if the record changed since this revision was read.
    expect_revision: int | None = None


@dataclass(frozen=True)
class ListQuery:
    phases: tuple[int, ...] = ()
    cluster: str = ""
    tenant: str = ""
    after_seq: int = 0
    limit: int = 100


@dataclass(frozen=True)
class ListPage:
    items: list[common_pb2.AppWrapper]
    # Position of the last item, for the next page; None when this page is the last.
    next_after_seq: int | None
    total: int


@dataclass(frozen=True)
class CarbonTotals:
    planned_gco2: float = 0.0
    emitted_gco2: float = 0.0
    counterfactual_gco2: float = 0.0
    accounted: int = 0


@dataclass(frozen=True)
class IntensityRow:
    zone: str
    start: float
    seconds: float
    gco2_per_kwh: float
    fetched_at: float


@dataclass(frozen=True)
class Lease:
    """Who leads `name` until `expires` (epoch seconds); `epoch` grows by one at every change of holder."""

    name: str
    holder: str
    epoch: int
    expires: float

    def held_by(self, holder: str, now: float) -> bool:
        return self.holder == holder and now < self.expires

    @property
    def fence(self) -> Fence:
        return Fence(self.name, self.epoch)


@dataclass(frozen=True)
class Fence:
    """Carried by a leader's writes: the store refuses them once `name` has a newer epoch."""

    name: str
    epoch: int


CommitListener = Callable[[Sequence[Change]], None]


class RevisionCompacted(ContractError):
    code = "FAILED_PRECONDITION"


class Fenced(FailedPrecondition):
    """A write carried the epoch of a leader that has since been replaced."""


class StoreUnavailable(Unavailable):
    """The database cannot be reached (down, restarting, connection lost); nothing was acknowledged."""


class StoreRefused(Exception):
    """The store will not open: its database is damaged, locked by another process, or takes no write.

    The message is one line for the operator, naming the database and what to do; the hub exits with it
    instead of starting READY on a database it could not keep its promises on."""
