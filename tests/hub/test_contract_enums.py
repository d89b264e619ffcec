"""Enums the hub mirrors from the contracts, pinned to them by name, so a value added or renumbered on one
side fails here rather than in production."""

from __future__ import annotations

from caspian.v1 import dispatcher_pb2, hub_pb2
from services.hub import phases
from services.hub.ports import JobState
from services.hub.store import ChangeKind
from services.hub.watch import BOOKMARK


def test_job_states_are_the_dispatchers_job_phases():
    assert {s.name: s.value for s in JobState} == {
        name.removeprefix("JOB_PHASE_"): number
        for name, number in dispatcher_pb2.JobPhase.items()
        if number != dispatcher_pb2.JOB_PHASE_UNSPECIFIED
    }


def test_change_kinds_and_the_bookmark_are_the_watch_event_types():
    contract = {
        name.removeprefix("WATCH_EVENT_TYPE_"): number
        for name, number in hub_pb2.WatchEventType.items()
        if number != hub_pb2.WATCH_EVENT_TYPE_UNSPECIFIED
    }
    assert contract == {**{k.name: k.value for k in ChangeKind}, "BOOKMARK": BOOKMARK}


def test_phase_short_names_are_the_contracts():
    for short in ("PENDING", "SCHEDULED", "DISPATCHING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"):
        assert getattr(phases, short) == phases.Phase.Value(f"APP_WRAPPER_PHASE_{short}")
    assert phases.UNSCHEDULABLE == phases.Phase.Value("APP_WRAPPER_PHASE_UNSCHEDULABLE")
