"""The operations of an interruptible job's segments (PAUSED ... JOB_SUSPENDED in the table of
`services.hub.lifecycle`) and the bookkeeping of its run segments and progress.

Every operation is idempotent under a duplicate or replayed event: a run segment opens only at a start later
than the last one closed, closes only while open, and the planned segments a pause drops are the ones that
started by then (by time, not by count).
"""

from __future__ import annotations

from datetime import datetime

from caspian.v1 import common_pb2
from services.common.timeconv import timestamp_from_seconds, timestamp_seconds, to_duration, to_timestamp
from services.hub import segments
from services.hub.lifecycle import Event, allowed
from services.hub.phases import RUNNING, SUSPENDED, UNSCHEDULABLE
from services.hub.store import AppWrapperRecord


def pause(r: AppWrapperRecord, *, at: datetime) -> bool:
    """PAUSED: the gate suspended the Job at its running segment's planned end. The run segment is closed by
    the spoke's SUSPENDED event (its exact time); the planned segments started by `at` are done. Guard: only
    an interruptible job is ever paused."""
    if not allowed(r.phase, Event.PAUSED) or not segments.is_interruptible(r.message):
        return False
    status = r.message.status
    status.phase = SUSPENDED
    status.reason = "paused until its next segment"
    _drop_started(status, at.timestamp())
    return True


def resume(r: AppWrapperRecord, *, at: datetime) -> bool:
    """RESUMED: the gate resumed the Job at its next segment's start. A resume later than planned keeps the
    segment's planned length when that still ends before the next segment (or, for the last, the deadline);
    otherwise its planned end stands and the work it misses is re-planned after the next pause."""
    if not allowed(r.phase, Event.RESUMED):
        return False
    status = r.message.status
    status.phase = RUNNING
    status.reason = ""
    spans = segments.planned(status)
    now_s = at.timestamp()
    if spans and spans[0].start < now_s:
        limit = spans[1].start if len(spans) > 1 else timestamp_seconds(r.message.deadline)
        shifted = now_s + spans[0].seconds
        if shifted <= limit or not r.message.HasField("deadline") and len(spans) == 1:
            status.planned_segments[0].start.CopyFrom(timestamp_from_seconds(now_s))
            status.planned_segments[0].end.CopyFrom(timestamp_from_seconds(shifted))
    return True


def resume_refused(r: AppWrapperRecord, *, reason: str, cycle: int) -> bool:
    """RESUME_REFUSED: the dispatcher will not resume (the deadline has passed). Final; its Job is deleted."""
    if not allowed(r.phase, Event.RESUME_REFUSED):
        return False
    status = r.message.status
    status.phase = UNSCHEDULABLE
    status.reason = reason
    status.cycle = cycle
    del status.planned_segments[:]
    r.needs_cleanup = True
    r.needs_accounting = status.HasField("started_at")
    if r.needs_accounting and not status.HasField("finished_at") and status.run_segments:
        status.finished_at.CopyFrom(status.run_segments[-1].end)
    return True


def unplaced_suspended(r: AppWrapperRecord, *, reason: str, now_s: float, cycle: int) -> bool:
    """A Suspended job the plan could not place again: rather than lose its progress, it resumes now on its
    cluster for the work left (one segment), with the reason."""
    if r.phase != SUSPENDED:
        return False
    status = r.message.status
    left = segments.remaining_seconds(r.message) + segments.overhead_seconds(r.message)
    segment = common_pb2.RunSegment(
        cluster=status.target_cluster,
        start=timestamp_from_seconds(now_s),
        end=timestamp_from_seconds(now_s + left),
    )
    if len(status.planned_segments) == 1 and status.reason == reason:
        return False
    del status.planned_segments[:]
    status.planned_segments.append(segment)
    status.planned_start.CopyFrom(segment.start)
    status.reason = reason
    status.cycle = cycle
    return True


def _drop_started(status: common_pb2.AppWrapperStatus, at_s: float) -> None:
    keep = [s for s in status.planned_segments if timestamp_seconds(s.start) > at_s]
    if len(keep) == len(status.planned_segments):
        return
    del status.planned_segments[:]
    status.planned_segments.extend(keep)
    if keep:
        status.planned_start.CopyFrom(keep[0].start)


# -- run segments and progress, from the Job's events ----------------------------------------------------


def open_run_segment(r: AppWrapperRecord, *, cluster: str, at: datetime) -> bool:
    """A RUNNING event: a new run segment from `at` (the Job's start time, reset at each resume), unless one is
    open or `at` is not after the last one's end (a replayed event)."""
    status = r.message.status
    if segments.segment_open(status):
        return False
    at_s = at.timestamp()
    if status.run_segments and at_s <= timestamp_seconds(status.run_segments[-1].end):
        return False
    status.run_segments.append(common_pb2.RunSegment(cluster=cluster, start=to_timestamp(at)))
    return True


def close_run_segment(r: AppWrapperRecord, *, at: datetime, restarts: bool = False) -> bool:
    """The open run segment ends at `at` (a suspend, the end of the run): its useful work joins the progress;
    a Job that does not keep its progress across pauses (`restarts`) starts again from zero."""
    status = r.message.status
    if not segments.segment_open(status):
        return False
    last = status.run_segments[-1]
    end_s = max(at.timestamp(), timestamp_seconds(last.start))
    last.end.CopyFrom(timestamp_from_seconds(end_s))
    if restarts:
        status.ClearField("progress")
    else:
        done = segments.useful_seconds(r.message, segments.run(status))
        status.progress.CopyFrom(to_duration(done))
    return True


def job_suspended(
    r: AppWrapperRecord, *, at: datetime, suspensions: int, restarts: bool, interruptible: bool
) -> bool:
    """JOB_SUSPENDED: the spoke reports the Job suspended at `at`: the run segment closes, the pause counts,
    and a Running job (the gate's PAUSED was not written, or another hand suspended it) is Suspended."""
    status = r.message.status
    changed = close_run_segment(r, at=at, restarts=restarts)
    pauses = max(status.pauses, suspensions) if suspensions else status.pauses + int(changed)
    if pauses != status.pauses:
        status.pauses = pauses
        changed = True
    if r.phase == RUNNING and allowed(r.phase, Event.JOB_SUSPENDED):
        status.phase = SUSPENDED
        status.reason = (
            "paused until its next segment" if interruptible else "the Job is suspended on the spoke"
        )
        _drop_started(status, at.timestamp())
        changed = True
    return changed
