"""Interruptible jobs in the plan: what the request says of them, the capacity their segments hold, and the
check of a placement in segments. The request (request.py), triage, solving and windows call these.

- Request: an interruptible job is sent with its segment terms, its remaining work (expected runtime less
  progress), the pauses taken and whether its next segment resumes from a checkpoint. A Suspended job may only
  stay on its cluster (its Job is there, suspended).
- Reservations: a planned segment holds capacity over its slots (the running one from slot 0 to its planned
  end); a suspended job holds none until its next segment.
- Check: every segment inside the grid, in time order, not before the earliest start, the last ending by the
  deadline.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import timedelta

from services.common.timeconv import no_later_than
from services.hub import segments
from services.hub.grid import Grid
from services.hub.phases import SUSPENDED
from services.hub.ports import demand_of
from services.hub.store import AppWrapperRecord
from services.optimizer.problem import Job, Placement, Problem, Reservation


def with_segment_terms(job: Job, record: AppWrapperRecord, names: set[str]) -> Job:
    """`job` (as request.py builds it) with the interruptible job's segment terms; unchanged for another."""
    message = record.message
    terms = segments.terms_of(message)
    if terms is None:
        return job
    job = replace(
        job,
        interruptible=terms,
        remaining_runtime=timedelta(seconds=segments.remaining_seconds(message)),
        pauses_taken=message.status.pauses,
        needs_resume=segments.needs_resume(message),
    )
    cluster = message.status.target_cluster
    if record.phase == SUSPENDED and cluster in names:
        job = replace(job, required_clusters=(cluster,), current_cluster=cluster, preferred_clusters=())
    return job


def segment_reservations(record: AppWrapperRecord, grid: Grid, now_s: float) -> list[Reservation]:
    """Each planned segment of a job that holds capacity, in grid slots (the one under way from slot 0)."""
    message = record.message
    status = message.status
    out = []
    for span in segments.planned(status):
        if span.end <= now_s:
            continue
        first = 0 if span.start <= now_s else max(0, grid.slot_index(span.start))
        if first >= grid.slots:
            break
        end = min(grid.slots, max(first + 1, grid.slot_index(span.end)))
        out.append(
            Reservation(status.target_cluster, demand_of(message.template.resources), first, end, record.id)
        )
    return out


def work_of(job: Job) -> float:
    """The run time a placement of `job` in one piece lasts: its remaining work, plus a resume overhead when its
    first segment resumes from a checkpoint."""
    work = (job.remaining_runtime if job.remaining_runtime is not None else job.runtime).total_seconds()
    if job.interruptible is not None and job.needs_resume:
        work += job.interruptible.resume_overhead.total_seconds()
    return work


def planned_spans(placement: Placement, job: Job, grid: Grid) -> list[tuple[float, float]]:
    """A placement's segments as [start, end) in seconds: an interruptible job placed in one piece is one
    segment (so its gates and reservations read one way); [] for a job that is not interruptible.

    The optimizer's segments run whole slots, the last one only in part (the work's remainder, charged pro
    rata; its deadline rule is on that): the optimizer ends the last segment where the work completes, not at
    its last slot's end. Earlier segments end on their slot boundary, where the gate suspends the job."""
    if placement.segments:
        return [(s.start.timestamp(), s.end.timestamp()) for s in placement.segments]
    if job.interruptible is None:
        return []
    start = grid.start_s + placement.start_slot * grid.slot_seconds
    return [(start, start + work_of(job))]


def booked_segments(placement: Placement, job: Job, grid: Grid) -> list[Reservation]:
    """The capacity a placement in segments takes, for the windows after its own."""
    return [
        Reservation(placement.cluster, job.resources, s.start_slot, min(grid.slots, s.end_slot), job.id)
        for s in placement.segments
        if 0 <= s.start_slot < grid.slots
    ]


def check_segments(placement: Placement, job: Job, grid: Grid) -> str:
    """Why a placement in segments cannot be used ('' when it can)."""
    if job.interruptible is None:
        return "not placed: the optimizer split a job that is not interruptible into segments"
    spans = planned_spans(placement, job, grid)
    previous_end = -math.inf
    for start, end in spans:
        if not (grid.start_s - 1e-6 <= start < end <= grid.end_s + 1e-6) or start < previous_end - 1e-6:
            return "not placed: the optimizer's segments are outside the horizon or out of order"
        previous_end = end
    if job.earliest_start is not None and not no_later_than(job.earliest_start.timestamp(), spans[0][0]):
        return "not placed: the optimizer started it before its earliest start"
    if (
        job.deadline is not None
        and not placement.late
        and not no_later_than(spans[-1][1], job.deadline.timestamp())
    ):
        return "not placed: the optimizer's last segment misses the deadline"
    return ""


def in_one_piece(problem: Problem) -> Problem:
    """The same problem with every job run in one piece (for the preview's comparison)."""
    return replace(problem, jobs=tuple(replace(j, interruptible=None) for j in problem.jobs))
