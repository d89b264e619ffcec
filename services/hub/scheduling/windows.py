"""Step 5's windows: the jobs to solve, split into requests the optimizer takes (at most its MAX_JOBS each).

The jobs go most urgent first (deadline, then earliest start, then id), so when a backlog is larger than one
request the jobs that can wait least are planned first. Each window's placements become reservations for the
next window, so the windows together never plan more than a cluster holds. All windows of a cycle share one
solve deadline: a window starts only while some of it remains; the jobs of windows not started keep their
plan (Scheduled) or wait Pending, with the reason, for the next cycle, which takes them first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from services.common.timeconv import timestamp_seconds
from services.hub.grid import Grid
from services.hub.scheduling.segment_plan import booked_segments, work_of
from services.hub.store import AppWrapperRecord
from services.optimizer.problem import Problem, Reservation, Result


def urgency(record: AppWrapperRecord) -> tuple[float, float, str]:
    message = record.message
    deadline = timestamp_seconds(message.deadline) if message.HasField("deadline") else math.inf
    earliest = timestamp_seconds(message.earliest_start) if message.HasField("earliest_start") else 0.0
    return deadline, earliest, record.id


def windows(records: Sequence[AppWrapperRecord], size: int) -> list[list[AppWrapperRecord]]:
    """`records`, most urgent first, in windows of at most `size` (0: one window)."""
    ordered = sorted(records, key=urgency)
    if size <= 0 or len(ordered) <= size:
        return [ordered] if ordered else []
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]


def booked(problem: Problem, result: Result, grid: Grid) -> list[Reservation]:
    """The capacity a window's placements take, as reservations for the windows after it."""
    jobs = {j.id: j for j in problem.jobs}
    taken = []
    for placement in result.placements:
        job = jobs.get(placement.job_id)
        if job is None or not placement.placed or not 0 <= placement.start_slot < grid.slots:
            continue
        if placement.segments:
            taken.extend(booked_segments(placement, job, grid))
            continue
        slots = max(1, math.ceil(work_of(job) / grid.slot_seconds - 1e-9))
        end = min(grid.slots, placement.start_slot + slots)
        taken.append(Reservation(placement.cluster, job.resources, placement.start_slot, end, job.id))
    return taken
