"""How an AppWrapper maps to its table rows, the same for every backend.

An AppWrapper is stored as the serialized `caspian.v1.AppWrapper` plus indexed columns (phase, cluster, tenant,
revision) for the queries the hub makes, and the hub's bookkeeping columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from caspian.v1 import common_pb2
from services.common.errors import AlreadyExists
from services.common.timeconv import to_timestamp
from services.hub.store.records import AppWrapperRecord, Change, ChangeKind, NewAppWrapper

RECORD_COLUMNS = (
    "body, baseline_cluster, baseline_start, needs_accounting, accounted, needs_cleanup, fingerprint"
)
INSERT_COLUMNS = (
    "id, tenant, phase, target_cluster, revision, request_id, fingerprint, planned_start, updated, body"
)
UPDATE_ASSIGNMENTS = (
    "phase, target_cluster, revision, planned_start, planned_gco2, actual_gco2, counterfactual_gco2, "
    "baseline_cluster, baseline_start, needs_accounting, accounted, needs_cleanup, updated, body"
).split(", ")
CHANGE_COLUMNS = "revision, id, kind, phase, tenant, previous_phase, body"


def record_from_row(row: Sequence[Any]) -> AppWrapperRecord:
    """A record from the RECORD_COLUMNS of a row."""
    return AppWrapperRecord(
        message=common_pb2.AppWrapper.FromString(row[0]),
        baseline_cluster=row[1],
        baseline_start=row[2],
        needs_accounting=bool(row[3]),
        accounted=bool(row[4]),
        needs_cleanup=bool(row[5]),
        fingerprint=bytes(row[6]),
    )


def change_from_row(row: Sequence[Any]) -> Change:
    """A change from (revision, kind, previous_phase, body)."""
    revision, kind, previous_phase, body = row
    return Change(revision, ChangeKind(kind), common_pb2.AppWrapper.FromString(body), previous_phase)


def epoch_seconds(ts) -> float | None:
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    return ts.seconds + ts.nanos / 1e9


def conflicting_spec(app_wrapper_id: str) -> AlreadyExists:
    return AlreadyExists(
        f"AppWrapper {app_wrapper_id!r} exists with a different spec; use a new id", field="app_wrapper.id"
    )


@dataclass(frozen=True)
class WriteTime:
    """A write's now, converted once for all the rows it stamps: the messages' Timestamp and the epoch
    seconds of the `updated` column."""

    stamp: Timestamp
    seconds: float

    @classmethod
    def of(cls, now: datetime) -> WriteTime:
        return cls(to_timestamp(now), now.timestamp())


def new_row(item: NewAppWrapper, revision: int, at: WriteTime) -> tuple[tuple, tuple, Change]:
    """Stamp a new AppWrapper with its revision and times: its row, its change-log row and its change."""
    message = item.message
    message.revision = revision
    if not message.HasField("created_at"):
        message.created_at.CopyFrom(at.stamp)
    message.updated_at.CopyFrom(message.created_at)
    body = message.SerializeToString()
    status = message.status
    row = (
        message.id,
        message.tenant,
        status.phase,
        status.target_cluster,
        revision,
        item.request_id,
        item.fingerprint,
        epoch_seconds(status.planned_start),
        at.seconds,
        body,
    )
    change_row = (revision, message.id, ChangeKind.ADDED, status.phase, message.tenant, 0, body)
    return row, change_row, Change(revision, ChangeKind.ADDED, message)


def updated_row(
    record: AppWrapperRecord, revision: int, at: WriteTime, previous_phase: int
) -> tuple[tuple, tuple, Change]:
    """Stamp a mutated record: the UPDATE_ASSIGNMENTS values then its id, its change-log row, its change."""
    message = record.message
    message.revision = revision
    message.updated_at.CopyFrom(at.stamp)
    body = message.SerializeToString()
    status = message.status
    row = (
        status.phase,
        status.target_cluster,
        revision,
        epoch_seconds(status.planned_start),
        status.carbon.planned_gco2,
        status.carbon.actual_gco2,
        status.carbon.counterfactual_gco2,
        record.baseline_cluster,
        record.baseline_start,
        int(record.needs_accounting),
        int(record.accounted),
        int(record.needs_cleanup),
        at.seconds,
        body,
        record.id,
    )
    change_row = (
        revision,
        message.id,
        ChangeKind.MODIFIED,
        status.phase,
        message.tenant,
        previous_phase,
        body,
    )
    return row, change_row, Change(revision, ChangeKind.MODIFIED, message, previous_phase)


def deleted_row(
    app_wrapper_id: str, phase: int, tenant: str, body: bytes, revision: int
) -> tuple[tuple, Change]:
    """A collected AppWrapper's DELETED change-log row and change (the last state, at the new revision)."""
    message = common_pb2.AppWrapper.FromString(body)
    message.revision = revision
    # The log keeps the last state at the deletion's revision: a replay shows what a live watcher saw.
    body = message.SerializeToString()
    return (
        (revision, app_wrapper_id, ChangeKind.DELETED, phase, tenant, phase, body),
        Change(revision, ChangeKind.DELETED, message, phase),
    )
