"""The operations a Job's events make on its AppWrapper (JOB_PENDING ... JOB_VANISHED in the table of
`services.hub.lifecycle`), and the stale-Job rule."""

from __future__ import annotations

from datetime import datetime

from caspian.v1 import common_pb2
from services.common.timeconv import from_timestamp, to_timestamp
from services.hub import segments
from services.hub.lifecycle import _PLANNABLE, Event, _confirmed, _started, allowed
from services.hub.lifecycle.segments import close_run_segment, job_suspended, open_run_segment
from services.hub.phases import (
    CANCELLED,
    DISPATCHING,
    FAILED,
    RUNNING,
    SUCCEEDED,
    SUSPENDED,
)
from services.hub.ports import JobState, JobStatus
from services.hub.store import TERMINAL_PHASES, AppWrapperRecord


def apply_job_event(r: AppWrapperRecord, *, event: JobStatus, now: datetime) -> bool:
    """What a Job's state on a spoke means for its AppWrapper.

    A Job on a cluster other than the target is adopted only when the AppWrapper is not dispatched anywhere
    and that Job already ran (rather than run the work twice); otherwise it is stale (`stale_job_cluster`).
    """
    status = r.message.status
    phase = r.phase
    state = event.state
    finished = state in (JobState.SUCCEEDED, JobState.FAILED)
    if event.cluster != status.target_cluster:
        if not (phase in _PLANNABLE and (state == JobState.RUNNING or finished)):
            return False
        status.target_cluster = event.cluster
        status.ClearField("planned_start")
    if phase == CANCELLED or phase in TERMINAL_PHASES:
        return False
    if state == JobState.UNKNOWN:
        # The phase stays (a Running job keeps running); the reason says the spoke does not answer.
        note = f"state unknown: {event.reason or 'the spoke does not answer'}"
        if status.reason == note:
            return False
        status.reason = note
        return True
    if state == JobState.DELETED:
        return _job_gone(
            r,
            "the Job was deleted before it ran; dispatching again",
            "the Job was deleted from the spoke while running",
            event,
            now,
        )
    if state == JobState.SUSPENDED and segments.is_interruptible(r.message):
        return job_suspended(
            r,
            at=event.suspended_at or event.observed_at or now,
            suspensions=event.suspensions,
            restarts=event.interruptible and not event.checkpointing,
            interruptible=True,
        )
    if state == JobState.SUSPENDED:
        # Suspended on the spoke (spec.suspend): not a failure; the phase stays and the reason says so.
        note = "the Job is suspended on the spoke"
        if status.reason == note:
            return False
        status.reason = note
        return True
    changed = False
    if event.job_name and status.job_name != event.job_name:
        status.job_name = event.job_name
        changed = True
    if state == JobState.PENDING:
        if allowed(phase, Event.JOB_PENDING) and phase != DISPATCHING:
            status.phase = DISPATCHING
            changed = True
        if status.reason.startswith("state unknown"):
            status.reason = ""
            changed = True
        return changed
    if state == JobState.RUNNING and segments.is_interruptible(r.message):
        # A run segment opens at the Job's start time (reset at each resume); a Suspended job runs again only
        # for a segment newer than the last one closed (not for a replayed event of an earlier one).
        opened = open_run_segment(r, cluster=event.cluster, at=event.start_time or event.observed_at or now)
        if phase == SUSPENDED and not opened:
            return changed
        changed = changed or opened
    if state == JobState.RUNNING:
        if phase != RUNNING or status.reason:
            status.phase = RUNNING
            status.reason = ""
            changed = True
        if not _started(r):
            status.started_at.CopyFrom(to_timestamp(event.start_time or event.observed_at or now))
            changed = True
        return changed
    if state == JobState.SUCCEEDED:
        _finish(status, SUCCEEDED, "", event, now)
    else:
        _finish(status, FAILED, f"the Job failed: {event.reason or 'no reason given'}", event, now)
    close_run_segment(r, at=from_timestamp(status.finished_at))
    r.needs_accounting = _started(r)
    return True


def vanish(r: AppWrapperRecord) -> bool:
    """JOB_DELETED for a Job missing from a dispatcher snapshot (deleted while the hub was not watching)."""
    return _job_gone(
        r,
        "the Job is gone from the spoke; dispatching again",
        "the Job vanished from the spoke while the hub was not watching",
        None,
        None,
    )


def _job_gone(
    r: AppWrapperRecord, again: str, lost: str, event: JobStatus | None, now: datetime | None
) -> bool:
    status = r.message.status
    if r.phase == DISPATCHING and _confirmed(r):
        status.job_name = ""
        status.reason = again
        return True
    if r.phase in (RUNNING, SUSPENDED):
        if event is None or now is None:
            status.phase = FAILED
            status.reason = lost
            return True
        _finish(status, FAILED, lost, event, now)
        r.needs_accounting = _started(r)
        return True
    return False


def stale_job_cluster(r: AppWrapperRecord | None, event: JobStatus) -> str:
    """The cluster whose Job must be deleted after `event` was applied to `r` ('' for none): a Job that is
    not its AppWrapper's (another target, not adopted) or whose AppWrapper was cancelled."""
    if r is None or event.state == JobState.DELETED:
        return ""
    if event.cluster != r.message.status.target_cluster or r.phase == CANCELLED:
        return event.cluster
    return ""


def _finish(
    status: common_pb2.AppWrapperStatus,
    phase: common_pb2.AppWrapperPhase,
    reason: str,
    event: JobStatus,
    now: datetime,
) -> None:
    status.phase = phase
    status.reason = reason
    if not status.HasField("started_at") and event.start_time is not None:
        status.started_at.CopyFrom(to_timestamp(event.start_time))
    status.finished_at.CopyFrom(to_timestamp(event.completion_time or event.observed_at or now))


# -- bookkeeping (no phase change) ----------------------------------------------------------------------------
