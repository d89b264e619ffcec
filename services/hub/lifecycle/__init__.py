"""The AppWrapper state machine: every phase change is one named operation here, and nowhere else.

Each operation runs on the store's writer with the record as it is now (not as a cycle read it, so a Cancel
that lands mid-cycle wins), changes it in place and returns whether it changed anything: False means nothing
is written and no watch event is sent. `change(id, operation, ...)` makes the store's `Update` for one.

The phases an event may move an AppWrapper between are the table `TRANSITIONS`; a pair not in it leaves the
phase as it is. Some moves have a further guard on the status (a Dispatching job whose Job is confirmed
cannot go back to the gate; one that has started cannot be re-planned), noted beside the operation.

    PLACED              Pending/Scheduled -> Scheduled (cluster, planned start, planned gCO2)
    REFUSED             Pending/Scheduled -> Unschedulable (the deadline cannot be met; no cluster fits)
    REQUEUED            Pending/Scheduled/Dispatching-not-started -> Pending (not placed, cluster lost)
    GATE_OPENED         Scheduled/Dispatching-unconfirmed -> Dispatching (one more attempt)
    DISPATCH_FAILED     Dispatching-unconfirmed -> Scheduled (retried), or Failed past the attempt limit
    CANCELLED           any active phase -> Cancelled
    JOB_PENDING         Pending/Scheduled -> Dispatching (the Job exists on the spoke)
    JOB_RUNNING         any active phase -> Running
    JOB_SUCCEEDED       any active phase -> Succeeded
    JOB_FAILED          any active phase -> Failed
    JOB_DELETED         Running -> Failed; Dispatching keeps its phase and is dispatched again
    JOB_VANISHED        (missing from a dispatcher snapshot) as JOB_DELETED

Interruptible jobs (lifecycle/segments.py):

    PLACED              also Suspended -> Suspended (the remaining work re-planned in segments)
    PAUSED              Running -> Suspended (the gate suspended the Job at its segment's planned end)
    RESUMED             Suspended -> Running (the gate resumed the Job at its next segment's start)
    RESUME_REFUSED      Suspended -> Unschedulable (the deadline passed before the resume)
    JOB_SUSPENDED       Running/Suspended -> Suspended (the spoke reports the Job suspended; run segment closed)
    JOB_RUNNING         also Suspended -> Running, only for a run segment newer than the last one closed
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from google.protobuf.timestamp_pb2 import Timestamp

from caspian.v1 import common_pb2
from services.common.timeconv import timestamp_from_seconds, to_timestamp
from services.hub.phases import (
    CANCELLED,
    DISPATCHING,
    FAILED,
    PENDING,
    RUNNING,
    SCHEDULED,
    SUCCEEDED,
    SUSPENDED,
    UNSCHEDULABLE,
)
from services.hub.store import AppWrapperRecord, Store, Update


class Event(enum.Enum):
    PLACED = "placed"
    REFUSED = "refused"
    REQUEUED = "requeued"
    GATE_OPENED = "gate opened"
    DISPATCH_RETRIED = "dispatch retried"
    DISPATCH_GAVE_UP = "dispatch gave up"
    DEADLINE_PASSED = "deadline passed"
    CANCELLED = "cancelled"
    JOB_PENDING = "job pending"
    JOB_RUNNING = "job running"
    JOB_SUCCEEDED = "job succeeded"
    JOB_FAILED = "job failed"
    JOB_DELETED = "job deleted"
    PAUSED = "paused"
    RESUMED = "resumed"
    RESUME_REFUSED = "resume refused"
    JOB_SUSPENDED = "job suspended"


_ACTIVE = (PENDING, SCHEDULED, DISPATCHING, RUNNING, SUSPENDED)
_PLANNABLE = (PENDING, SCHEDULED)

TRANSITIONS: dict[tuple[int, Event], common_pb2.AppWrapperPhase] = {
    **{(p, Event.PLACED): SCHEDULED for p in _PLANNABLE},
    (SUSPENDED, Event.PLACED): SUSPENDED,
    **{(p, Event.REFUSED): UNSCHEDULABLE for p in _PLANNABLE},
    **{(p, Event.REQUEUED): PENDING for p in (PENDING, SCHEDULED, DISPATCHING)},
    **{(p, Event.GATE_OPENED): DISPATCHING for p in (SCHEDULED, DISPATCHING)},
    (DISPATCHING, Event.DISPATCH_RETRIED): SCHEDULED,
    (DISPATCHING, Event.DISPATCH_GAVE_UP): FAILED,
    **{(p, Event.DEADLINE_PASSED): UNSCHEDULABLE for p in (SCHEDULED, DISPATCHING)},
    **{(p, Event.CANCELLED): CANCELLED for p in _ACTIVE},
    **{(p, Event.JOB_PENDING): DISPATCHING for p in (PENDING, SCHEDULED, DISPATCHING)},
    **{(p, Event.JOB_RUNNING): RUNNING for p in _ACTIVE},
    **{(p, Event.JOB_SUCCEEDED): SUCCEEDED for p in _ACTIVE},
    **{(p, Event.JOB_FAILED): FAILED for p in _ACTIVE},
    (DISPATCHING, Event.JOB_DELETED): DISPATCHING,
    (RUNNING, Event.JOB_DELETED): FAILED,
    (SUSPENDED, Event.JOB_DELETED): FAILED,
    (RUNNING, Event.PAUSED): SUSPENDED,
    (SUSPENDED, Event.RESUMED): RUNNING,
    (SUSPENDED, Event.RESUME_REFUSED): UNSCHEDULABLE,
    **{(p, Event.JOB_SUSPENDED): SUSPENDED for p in (RUNNING, SUSPENDED)},
}

Operation = Callable[..., bool]


@dataclass(frozen=True)
class Baseline:
    """The carbon-agnostic placement of a job (its counterfactual), fixed at its first plan."""

    cluster: str
    start_s: float
    gco2: float


def change(app_wrapper_id: str, operation: Operation, /, revision: int | None = None, **args) -> Update:
    """The store update that runs `operation(record, **args)`; with `revision`, only on that revision."""
    return Update(app_wrapper_id, partial(operation, **args), revision)


async def commit(store: Store, updates: Sequence[Update]) -> None:
    """Write changes in chunks, so that each commit stays short and submissions interleave with a large plan."""
    for i in range(0, len(updates), 500):
        await store.update_app_wrappers(updates[i : i + 500])


def placed(record: AppWrapperRecord, **args) -> Update | None:
    """`place` on the revision the cycle read (a change since, such as a Cancel, wins); None when the record as
    read already holds this plan, where `place` would change nothing (most jobs of a re-plan keep theirs)."""
    if keeps_plan(record, **args):
        return None
    return change(record.id, place, revision=record.revision, **args)


def waiting(record: AppWrapperRecord, *, reason: str, cycle: int) -> Update:
    """`requeue` (back to Pending, or still Pending with a new reason) on the revision the cycle read."""
    return change(record.id, requeue, revision=record.revision, reason=reason, cycle=cycle)


def allowed(phase: int, event: Event) -> bool:
    return (phase, event) in TRANSITIONS


def _started(r: AppWrapperRecord) -> bool:
    return r.message.status.HasField("started_at")


def _confirmed(r: AppWrapperRecord) -> bool:
    return bool(r.message.status.job_name)


# -- planning -------------------------------------------------------------------------------------------------


def place(
    r: AppWrapperRecord,
    *,
    cluster: str,
    start_s: float,
    gco2: float,
    energy_wh: float,
    baseline: Baseline | None,
    cycle: int,
    segments: Sequence[tuple[float, float]] = (),
) -> bool:
    """PLACED. `baseline` is the carbon-agnostic placement, kept from the first plan; `segments` the planned
    segments ([start, end) in seconds) of an interruptible job placed in segments. A Suspended job keeps its
    phase and its cluster (its Job is there): only its plan changes."""
    if not allowed(r.phase, Event.PLACED):
        return False
    status = r.message.status
    start, planned = _plan(cluster, start_s, segments)
    if _same_plan(r, cluster, start, planned, gco2, baseline):
        return False
    if r.phase == SUSPENDED and status.target_cluster != cluster:
        return False
    status.phase = TRANSITIONS[(r.phase, Event.PLACED)]
    del status.planned_segments[:]
    status.planned_segments.extend(planned)
    status.target_cluster = cluster
    status.planned_start.CopyFrom(start)
    status.reason = ""
    status.carbon.planned_gco2 = gco2
    status.carbon.energy_wh = energy_wh
    status.cycle = cycle
    if baseline is not None and not r.baseline_cluster:
        r.baseline_cluster, r.baseline_start = baseline.cluster, baseline.start_s
        status.baseline_cluster = baseline.cluster
        status.baseline_start.CopyFrom(timestamp_from_seconds(baseline.start_s))
        status.carbon.counterfactual_gco2 = baseline.gco2
    return True


def keeps_plan(
    r: AppWrapperRecord,
    *,
    cluster: str,
    start_s: float,
    gco2: float,
    baseline: Baseline | None,
    segments: Sequence[tuple[float, float]] = (),
    energy_wh: float = 0.0,
    cycle: int = 0,
) -> bool:
    """Whether `place` with these arguments would leave `r` as it is: it already holds this plan. It takes all
    of `place`'s arguments; the energy and the cycle number alone never make a change."""
    start, planned = _plan(cluster, start_s, segments)
    return _same_plan(r, cluster, start, planned, gco2, baseline)


def _plan(
    cluster: str, start_s: float, segments: Sequence[tuple[float, float]]
) -> tuple[Timestamp, list[common_pb2.RunSegment]]:
    planned = [
        common_pb2.RunSegment(cluster=cluster, start=timestamp_from_seconds(a), end=timestamp_from_seconds(b))
        for a, b in segments
    ]
    return timestamp_from_seconds(start_s), planned


def _same_plan(
    r: AppWrapperRecord,
    cluster: str,
    start: Timestamp,
    planned: list[common_pb2.RunSegment],
    gco2: float,
    baseline: Baseline | None,
) -> bool:
    status = r.message.status
    return (
        r.phase in (SCHEDULED, SUSPENDED)
        and status.target_cluster == cluster
        and status.planned_start == start
        and list(status.planned_segments) == planned
        and abs(status.carbon.planned_gco2 - gco2) < 1e-9
        and not (baseline and not r.baseline_cluster)
    )


def refuse(r: AppWrapperRecord, *, reason: str, cycle: int) -> bool:
    """REFUSED: it can never run (its deadline cannot be met, or no cluster is large enough)."""
    if not allowed(r.phase, Event.REFUSED):
        return False
    status = r.message.status
    status.phase = UNSCHEDULABLE
    status.reason = reason
    status.target_cluster = ""
    status.ClearField("planned_start")
    del status.planned_segments[:]
    status.cycle = cycle
    return True


def requeue(r: AppWrapperRecord, *, reason: str, cycle: int | None = None, from_cluster: str = "") -> bool:
    """REQUEUED: back to Pending for the next plan, with the reason it waits.

    The one rule for every "back to Pending": not placed this cycle, its target cluster gone or not ready,
    its cluster deregistered. Guard: a Dispatching job that has started is left alone (its Job runs). With
    `from_cluster`, only a job planned on that cluster moves.
    """
    status = r.message.status
    if from_cluster and status.target_cluster != from_cluster:
        return False
    if not allowed(r.phase, Event.REQUEUED) or (r.phase == DISPATCHING and _started(r)):
        return False
    if r.phase == PENDING and status.reason == reason:
        return False
    if r.phase != PENDING and cycle is not None:
        status.cycle = cycle
    status.phase = PENDING
    status.reason = reason
    status.target_cluster = ""
    status.ClearField("planned_start")
    del status.planned_segments[:]
    return True


# -- gates and dispatch ---------------------------------------------------------------------------------------


def open_gate(r: AppWrapperRecord) -> bool:
    """GATE_OPENED: its start has come (or an unconfirmed dispatch is sent again). Guard: a Dispatching job
    whose Job is confirmed stays."""
    if not allowed(r.phase, Event.GATE_OPENED) or (r.phase == DISPATCHING and _confirmed(r)):
        return False
    status = r.message.status
    status.phase = DISPATCHING
    status.dispatch_attempts += 1
    status.reason = ""
    return True


def confirm_dispatch(r: AppWrapperRecord, *, job_name: str) -> bool:
    """The dispatcher created (or found) the Job: record its name. The phase stays."""
    status = r.message.status
    if r.phase not in (DISPATCHING, RUNNING) or status.job_name == job_name:
        return False
    status.job_name = job_name
    return True


def dispatch_failed(r: AppWrapperRecord, *, attempts: int, limit: int, error: str) -> bool:
    """DISPATCH_RETRIED (back to the gate) or, at `limit` attempts, DISPATCH_GAVE_UP. Guard: unconfirmed."""
    event = Event.DISPATCH_GAVE_UP if attempts >= limit else Event.DISPATCH_RETRIED
    if not allowed(r.phase, event) or _confirmed(r):
        return False
    status = r.message.status
    status.phase = TRANSITIONS[(r.phase, event)]
    if event == Event.DISPATCH_GAVE_UP:
        status.reason = f"dispatch failed {attempts} times: {error}"
    else:
        status.reason = f"dispatch attempt {attempts} failed: {error}; retrying"
    return True


def expire(r: AppWrapperRecord, *, reason: str, cycle: int) -> bool:
    """DEADLINE_PASSED: its deadline passed before its Job was created (at the gate, or the dispatcher refused
    the Job for that reason). Final at once: no retry can help. Guard: unconfirmed (a Job that exists is
    followed)."""
    if not allowed(r.phase, Event.DEADLINE_PASSED) or _confirmed(r):
        return False
    status = r.message.status
    status.phase = UNSCHEDULABLE
    status.reason = reason
    status.cycle = cycle
    return True


# -- cancel ---------------------------------------------------------------------------------------------------


def cancel(r: AppWrapperRecord, *, reason: str, now: datetime) -> bool:
    """CANCELLED. A dispatched job's Job must then be deleted (needs_cleanup); a running one is accounted."""
    if not allowed(r.phase, Event.CANCELLED):
        return False
    status = r.message.status
    dispatched = r.phase in (DISPATCHING, RUNNING, SUSPENDED)
    if r.phase in (RUNNING, SUSPENDED):
        status.finished_at.CopyFrom(to_timestamp(now))
        r.needs_accounting = _started(r)
        close_run_segment(r, at=now)
    status.phase = CANCELLED
    status.reason = reason
    r.needs_cleanup = dispatched
    return True


# -- Job events from the dispatcher ---------------------------------------------------------------------------


def account(
    r: AppWrapperRecord,
    *,
    actual: float,
    counterfactual: float,
    energy: float,
    split: tuple[float, float] | None = None,
) -> bool:
    """The finished run's actual and counterfactual gCO2 are final; `split` is the saving's (spatial,
    temporal) parts when known (see CarbonAccount in common.proto)."""
    carbon = r.message.status.carbon
    carbon.actual_gco2 = actual
    carbon.counterfactual_gco2 = counterfactual
    carbon.energy_wh = energy
    if split is not None:
        carbon.spatial_saving_gco2, carbon.temporal_saving_gco2 = split
    status = r.message.status
    if r.baseline_cluster and not status.baseline_cluster and r.baseline_start is not None:
        # Placed before the status carried its baseline: copy it from the hub's bookkeeping.
        status.baseline_cluster = r.baseline_cluster
        status.baseline_start.CopyFrom(timestamp_from_seconds(r.baseline_start))
    r.needs_accounting = False
    r.accounted = True
    return True


def mark_cleaned(r: AppWrapperRecord) -> bool:
    """The Job of a cancelled AppWrapper is gone from its spoke."""
    if not r.needs_cleanup:
        return False
    r.needs_cleanup = False
    return True


# The operations a Job's events make (after the definitions above, which they use).
from services.hub.lifecycle.job_events import apply_job_event as apply_job_event  # noqa: E402
from services.hub.lifecycle.job_events import stale_job_cluster as stale_job_cluster  # noqa: E402
from services.hub.lifecycle.job_events import vanish as vanish  # noqa: E402
from services.hub.lifecycle.segments import close_run_segment as close_run_segment  # noqa: E402
from services.hub.lifecycle.segments import pause as pause  # noqa: E402
from services.hub.lifecycle.segments import resume as resume  # noqa: E402
from services.hub.lifecycle.segments import resume_refused as resume_refused  # noqa: E402
from services.hub.lifecycle.segments import unplaced_suspended as unplaced_suspended  # noqa: E402
