"""Interruptible jobs' segments, read from an AppWrapper: its segment terms in the optimizer's domain, the work
left, the planned segments and the segments run. Pure functions of the message; the lifecycle operations
(lifecycle/segments.py) change them, the scheduling steps read them.

Planned segments (status.planned_segments) are the current plan from now on, all on target_cluster; while the
job runs, the first is the one running. Run segments (status.run_segments) are what happened: the last has no
end while it runs. Progress (status.progress) is the useful run time done: every run segment's length, less
one resume overhead for each segment after the first, for a Job that keeps its progress across pauses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from caspian.v1 import common_pb2
from services.common.timeconv import duration_seconds, timestamp_seconds
from services.common.timefields import duration_problem
from services.optimizer.problem import Interruptible


@dataclass(frozen=True)
class Span:
    """[start, end) in seconds since the epoch."""

    start: float
    end: float

    @property
    def seconds(self) -> float:
        return max(0.0, self.end - self.start)


def is_interruptible(message: common_pb2.AppWrapper) -> bool:
    return message.HasField("interruptible")


def terms_of(message: common_pb2.AppWrapper) -> Interruptible | None:
    """The job's segment terms in the optimizer's domain (None: it always runs in one piece)."""
    if not is_interruptible(message):
        return None
    terms = message.interruptible
    return Interruptible(
        resume_overhead=timedelta(seconds=duration_seconds(terms.resume_overhead)),
        min_segment=timedelta(seconds=duration_seconds(terms.min_segment)),
        max_pauses=terms.max_pauses if terms.HasField("max_pauses") else None,
    )


def overhead_seconds(message: common_pb2.AppWrapper) -> float:
    return duration_seconds(message.interruptible.resume_overhead) if is_interruptible(message) else 0.0


def progress_seconds(message: common_pb2.AppWrapper) -> float:
    return duration_seconds(message.status.progress)


def remaining_seconds(message: common_pb2.AppWrapper) -> float:
    """Useful run time still to do: the expected runtime less the progress so far (never below zero)."""
    runtime = duration_seconds(message.template.expected_runtime)
    return max(0.0, runtime - progress_seconds(message))


def needs_resume(message: common_pb2.AppWrapper) -> bool:
    """It has progress to restore: its next segment pays the resume overhead."""
    return is_interruptible(message) and progress_seconds(message) > 0


def planned(status: common_pb2.AppWrapperStatus) -> list[Span]:
    return [Span(timestamp_seconds(s.start), timestamp_seconds(s.end)) for s in status.planned_segments]


def run(status: common_pb2.AppWrapperStatus, now_s: float | None = None) -> list[Span]:
    """The segments run; one still open ends at `now_s` (or is left out when `now_s` is None)."""
    spans = []
    for s in status.run_segments:
        if s.HasField("end"):
            spans.append(Span(timestamp_seconds(s.start), timestamp_seconds(s.end)))
        elif now_s is not None:
            spans.append(Span(timestamp_seconds(s.start), now_s))
    return spans


def segment_open(status: common_pb2.AppWrapperStatus) -> bool:
    return bool(status.run_segments) and not status.run_segments[-1].HasField("end")


def due_to_suspend(message: common_pb2.AppWrapper, now_s: float) -> bool:
    """The gate decision for a running job: its running segment's planned end has come and the plan has more
    segments after it. Never for a job that is not interruptible."""
    if not is_interruptible(message):
        return False
    spans = planned(message.status)
    return len(spans) > 1 and spans[0].end <= now_s


def due_to_resume(message: common_pb2.AppWrapper, now_s: float) -> bool:
    """The gate decision for a suspended job: its next planned segment's start has come."""
    spans = planned(message.status)
    return is_interruptible(message) and bool(spans) and spans[0].start <= now_s


def useful_seconds(message: common_pb2.AppWrapper, spans: list[Span]) -> float:
    """The useful work in run segments `spans` (all of the job's, in order): each after the first pays one
    resume overhead."""
    overhead = overhead_seconds(message)
    return sum(max(0.0, s.seconds - (overhead if i > 0 else 0.0)) for i, s in enumerate(spans))


def work_seconds(message: common_pb2.AppWrapper) -> float:
    """The run time a plan must still give the job in one piece: the work left, plus the resume overhead when
    it has progress to restore. For a job that is not interruptible, its expected runtime."""
    if not is_interruptible(message):
        return duration_seconds(message.template.expected_runtime)
    return remaining_seconds(message) + (overhead_seconds(message) if needs_resume(message) else 0.0)


def interruptible_problem(message: common_pb2.AppWrapper, runtime_s: float) -> tuple[str, str] | None:
    """(sub-field of `interruptible`, message) of what makes the segment terms invalid at the door, or None:
    durations well formed and not negative, max_pauses not negative, a resume overhead shorter than the
    job's expected runtime (else no pause could ever pay)."""
    if not is_interruptible(message):
        return None
    terms = message.interruptible
    for name in ("resume_overhead", "min_segment"):
        value = getattr(terms, name)
        problem = duration_problem(value.seconds, value.nanos)
        if problem is not None:
            return f"{name}.{problem[0]}" if problem[0] else name, problem[1]
        if value.seconds < 0 or value.nanos < 0:
            return name, "must not be negative"
    if terms.HasField("max_pauses") and terms.max_pauses < 0:
        return "max_pauses", f"must not be negative, got {terms.max_pauses}"
    if duration_seconds(terms.resume_overhead) >= runtime_s:
        return "resume_overhead", "must be shorter than the expected runtime"
    return None
