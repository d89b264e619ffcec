"""The AppWrapper state machine as one table: every (phase, event) -> phase pair, run through lifecycle.py."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from caspian.v1 import common_pb2
from services.common.timeconv import timestamp_from_seconds, to_duration, to_timestamp
from services.hub import lifecycle
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
from services.hub.ports import JobState, JobStatus
from services.hub.store import AppWrapperRecord

NOW = datetime(2026, 6, 1, tzinfo=UTC)
P, S, D, R, OK, F, C, U = (
    PENDING,
    SCHEDULED,
    DISPATCHING,
    RUNNING,
    SUCCEEDED,
    FAILED,
    CANCELLED,
    UNSCHEDULABLE,
)
Su = SUSPENDED
# The columns: each phase, and Dispatching twice: before the dispatcher confirmed its Job ("D") and after
# ("Dc", the Job exists on the spoke but has not started). "Ri" is an interruptible job running its first
# segment (a second is planned), "Su" one suspended between its segments.
COLUMNS = ("P", "S", "D", "Dc", "R", "OK", "F", "C", "U", "Ri", "Su")


def record(column: str) -> AppWrapperRecord:
    message = common_pb2.AppWrapper(id="aw-1")
    status = message.status
    status.phase = {"Dc": D, "Ri": R}.get(column) or globals()[column]
    if column not in ("P", "U"):
        status.target_cluster = "east"
    if column == "Dc":
        status.job_name = "job-aw-1"
    if column in ("R", "OK", "F"):
        status.started_at.CopyFrom(to_timestamp(NOW))
    if column in ("Ri", "Su"):
        message.interruptible.resume_overhead.CopyFrom(to_duration(300))
        message.template.expected_runtime.CopyFrom(to_duration(4 * 3600))
        status.job_name = "job-aw-1"
        t = NOW.timestamp()
        first = common_pb2.RunSegment(cluster="east", start=timestamp_from_seconds(t - 7200))
        if column == "Su":
            first.end.CopyFrom(timestamp_from_seconds(t - 3600))
            status.progress.CopyFrom(to_duration(3600))
            status.pauses = 1
        status.started_at.CopyFrom(first.start)
        status.run_segments.append(first)
        later = [(t + 3600, t + 7200)] if column == "Su" else [(t - 7200, t - 60), (t + 3600, t + 7200)]
        for a, b in later:
            status.planned_segments.add(
                cluster="east", start=timestamp_from_seconds(a), end=timestamp_from_seconds(b)
            )
    return AppWrapperRecord(message)


def job(state: JobState, cluster: str = "east") -> Callable[[AppWrapperRecord], bool]:
    event = JobStatus("aw-1", cluster, state, job_name="job-aw-1", start_time=NOW, observed_at=NOW)
    return lambda r: lifecycle.apply_job_event(r, event=event, now=NOW)


EVENTS: dict[str, Callable[[AppWrapperRecord], bool]] = {
    "placed": lambda r: lifecycle.place(
        r, cluster="west", start_s=NOW.timestamp(), gco2=1.0, energy_wh=2.0, baseline=None, cycle=3
    ),
    "refused": lambda r: lifecycle.refuse(r, reason="deadline cannot be met", cycle=3),
    "requeued": lambda r: lifecycle.requeue(r, reason="waiting", cycle=3),
    "gate opened": lifecycle.open_gate,
    "dispatch retried": lambda r: lifecycle.dispatch_failed(r, attempts=1, limit=5, error="down"),
    "dispatch gave up": lambda r: lifecycle.dispatch_failed(r, attempts=5, limit=5, error="down"),
    "deadline passed": lambda r: lifecycle.expire(r, reason="deadline passed", cycle=3),
    "cancelled": lambda r: lifecycle.cancel(r, reason="by request", now=NOW),
    # Job events from the target cluster ("east"; a Pending or Unschedulable AppWrapper has no target, so for
    # those the Job is on another cluster: adopted only if it already ran).
    "job pending": job(JobState.PENDING),
    "job running": job(JobState.RUNNING),
    "job succeeded": job(JobState.SUCCEEDED),
    "job failed": job(JobState.FAILED),
    "job unknown": job(JobState.UNKNOWN),
    "job deleted": job(JobState.DELETED),
    "job vanished": lifecycle.vanish,
    # A Job on a cluster that is not the target: adopted only by an AppWrapper not dispatched anywhere.
    "job running elsewhere": job(JobState.RUNNING, cluster="west"),
    "job pending elsewhere": job(JobState.PENDING, cluster="west"),
    # The segment gates of an interruptible job, and its Job reported suspended.
    "paused": lambda r: lifecycle.pause(r, at=NOW),
    "resumed": lambda r: lifecycle.resume(r, at=NOW + timedelta(hours=1)),
    "resume refused": lambda r: lifecycle.resume_refused(r, reason="deadline passed", cycle=3),
    "job suspended": job(JobState.SUSPENDED),
}

# fmt: off
#                            P   S   D   Dc  R   OK  F   C   U  Ri  Su
TABLE = {
    "placed":                (S, S,  D,  D,  R,  OK, F,  C,  U, R, Su),
    "refused":               (U, U,  D,  D,  R,  OK, F,  C,  U, R, Su),
    "requeued":              (P, P,  P,  P,  R,  OK, F,  C,  U, R, Su),
    "gate opened":           (P, D,  D,  D,  R,  OK, F,  C,  U, R, Su),
    "dispatch retried":      (P, S,  S,  D,  R,  OK, F,  C,  U, R, Su),
    "dispatch gave up":      (P, S,  F,  D,  R,  OK, F,  C,  U, R, Su),
    "deadline passed":       (P, U,  U,  D,  R,  OK, F,  C,  U, R, Su),
    "cancelled":             (C, C,  C,  C,  C,  OK, F,  C,  U, C, C),
    "job pending":           (P, D,  D,  D,  R,  OK, F,  C,  U, R, Su),
    "job running":           (R, R,  R,  R,  R,  OK, F,  C,  U, R, R),
    "job succeeded":         (OK, OK, OK, OK, OK, OK, F, C,  U, OK, OK),
    "job failed":            (F, F,  F,  F,  F,  OK, F,  C,  U, F, F),
    "job unknown":           (P, S,  D,  D,  R,  OK, F,  C,  U, R, Su),
    "job deleted":           (P, S,  D,  D,  F,  OK, F,  C,  U, F, F),
    "job vanished":          (P, S,  D,  D,  F,  OK, F,  C,  U, F, F),
    "job running elsewhere": (R, R,  D,  D,  R,  OK, F,  C,  U, R, Su),
    "job pending elsewhere": (P, S,  D,  D,  R,  OK, F,  C,  U, R, Su),
    "paused":                (P, S,  D,  D,  R,  OK, F,  C,  U, Su, Su),
    "resumed":               (P, S,  D,  D,  R,  OK, F,  C,  U, R, R),
    "resume refused":        (P, S,  D,  D,  R,  OK, F,  C,  U, R, U),
    "job suspended":         (P, S,  D,  D,  R,  OK, F,  C,  U, Su, Su),
}
# fmt: on

CASES = [(event, column, TABLE[event][i]) for event in TABLE for i, column in enumerate(COLUMNS)]


def test_the_table_covers_every_event_and_phase():
    assert set(TABLE) == set(EVENTS)
    assert all(len(row) == len(COLUMNS) for row in TABLE.values())


@pytest.mark.parametrize(("event", "column", "expected"), CASES, ids=[f"{e}-{c}" for e, c, _ in CASES])
def test_phase_after_event(event, column, expected):
    r = record(column)
    before = r.phase
    changed = EVENTS[event](r)
    assert r.phase == expected
    if expected != before:
        assert changed
        named = event.removesuffix(" elsewhere").replace("vanished", "deleted").replace(" ", "_").upper()
        assert lifecycle.allowed(before, lifecycle.Event[named])


def test_requeue_from_a_cluster_moves_only_jobs_planned_there_and_never_a_started_one():
    elsewhere = record("S")
    assert not lifecycle.requeue(elsewhere, reason="cluster west lost", from_cluster="west")
    started = record("Dc")
    started.message.status.started_at.CopyFrom(to_timestamp(NOW))
    assert not lifecycle.requeue(started, reason="cluster east lost", from_cluster="east")
    planned = record("S")
    assert lifecycle.requeue(planned, reason="cluster east lost", from_cluster="east")
    assert planned.phase == PENDING and not planned.message.status.target_cluster
    # Waiting for the same reason again writes nothing (no watch event).
    assert not lifecycle.requeue(planned, reason="cluster east lost")


def test_a_job_that_is_not_its_app_wrappers_is_deleted_after_the_event():
    running = record("R")
    event = JobStatus("aw-1", "west", JobState.PENDING)
    assert not lifecycle.apply_job_event(running, event=event, now=NOW)
    assert lifecycle.stale_job_cluster(running, event) == "west"
    cancelled = record("C")
    own = JobStatus("aw-1", "east", JobState.RUNNING)
    assert lifecycle.stale_job_cluster(cancelled, own) == "east"
    assert lifecycle.stale_job_cluster(cancelled, JobStatus("aw-1", "east", JobState.DELETED)) == ""
    assert lifecycle.stale_job_cluster(record("R"), own) == ""
    assert lifecycle.stale_job_cluster(None, own) == ""


def test_dispatch_failures_count_to_the_limit_and_the_confirmed_job_is_left_alone():
    r = record("D")
    assert lifecycle.dispatch_failed(r, attempts=2, limit=5, error="down")
    assert r.phase == SCHEDULED and "attempt 2 failed" in r.message.status.reason
    r = record("D")
    assert lifecycle.dispatch_failed(r, attempts=5, limit=5, error="down")
    assert r.phase == FAILED and r.message.status.reason == "dispatch failed 5 times: down"


def test_a_suspended_job_is_not_a_failure():
    # The dispatcher reports Jobs suspended on the spoke (spec.suspend); the hub keeps the phase and says so.
    running = record("R")
    assert job(JobState.SUSPENDED)(running)
    assert running.phase == R and running.message.status.reason == "the Job is suspended on the spoke"
    assert not job(JobState.SUSPENDED)(running)  # the same again writes nothing
    assert job(JobState.RUNNING)(running) and running.phase == R and not running.message.status.reason


def test_placed_is_no_update_exactly_when_place_would_change_nothing():
    # A re-plan leaves most jobs where they are: the cycle writes only the placements that change something.
    record = AppWrapperRecord(
        common_pb2.AppWrapper(id="a", status=common_pb2.AppWrapperStatus(phase=PENDING))
    )
    args = dict(
        cluster="carbon-kr",
        start_s=NOW.timestamp() + 0.25,
        gco2=4.0,
        energy_wh=10.0,
        baseline=lifecycle.Baseline("carbon-cn", NOW.timestamp(), 6.0),
        cycle=1,
    )
    assert lifecycle.placed(record, **args) is not None and lifecycle.place(record, **args)
    same = {**args, "cycle": 2, "energy_wh": 11.0, "baseline": None}
    variants = [
        (same, False),
        ({**same, "cluster": "carbon-jp"}, True),
        ({**same, "start_s": NOW.timestamp() + 900.25}, True),
        ({**same, "gco2": 4.5}, True),
        ({**same, "segments": [(NOW.timestamp(), NOW.timestamp() + 900)]}, True),
    ]
    for variant, changes in variants:
        copy = AppWrapperRecord(common_pb2.AppWrapper())
        copy.message.CopyFrom(record.message)
        copy.baseline_cluster = record.baseline_cluster
        update = lifecycle.placed(copy, **variant)
        assert (update is not None) is changes, variant
        assert lifecycle.place(copy, **variant) is changes, variant


def test_place_keeps_the_first_baseline_in_the_status_and_account_copies_one_placed_before_it():
    record = AppWrapperRecord(
        common_pb2.AppWrapper(id="a", status=common_pb2.AppWrapperStatus(phase=PENDING))
    )
    first = lifecycle.Baseline("carbon-cn", NOW.timestamp(), 6.0)
    assert lifecycle.place(
        record,
        cluster="carbon-kr",
        start_s=NOW.timestamp(),
        gco2=4.0,
        energy_wh=10.0,
        baseline=first,
        cycle=1,
    )
    later = lifecycle.Baseline("carbon-jp", NOW.timestamp() + 900, 5.0)
    lifecycle.place(
        record,
        cluster="carbon-jp",
        start_s=NOW.timestamp(),
        gco2=4.0,
        energy_wh=10.0,
        baseline=later,
        cycle=2,
    )
    status = record.message.status
    assert status.baseline_cluster == "carbon-cn" and status.baseline_start == to_timestamp(NOW)
    # A record placed before the status carried its baseline has it only in the hub's bookkeeping.
    old = AppWrapperRecord(common_pb2.AppWrapper(id="b"), baseline_cluster="carbon-kr", baseline_start=1.5e9)
    lifecycle.account(old, actual=1.0, counterfactual=2.0, energy=3.0, split=(0.25, 0.75))
    status = old.message.status
    assert status.baseline_cluster == "carbon-kr" and status.baseline_start.seconds == 1_500_000_000
    assert (status.carbon.spatial_saving_gco2, status.carbon.temporal_saving_gco2) == (0.25, 0.75)
