"""AppWrapper state changes the scheduler makes, each a mutation run on the store's writer.

Each returns False when there is nothing to change (so nothing is written and no watch event is sent), and
checks the phase it finds, not the one the cycle read: a Cancel that lands mid-cycle wins.
"""

from __future__ import annotations

from services.common.timeconv import timestamp_from_seconds
from services.hub.phases import DISPATCHING, PENDING, RUNNING, SCHEDULED, UNSCHEDULABLE
from services.hub.store import AppWrapperRecord, Update


def to_unschedulable(record: AppWrapperRecord, reason: str, cycle: int) -> Update:
    def mutate(r: AppWrapperRecord) -> bool:
        if r.phase not in (PENDING, SCHEDULED):
            return False
        status = r.message.status
        status.phase = UNSCHEDULABLE
        status.reason = reason
        status.target_cluster = ""
        status.ClearField("planned_start")
        status.cycle = cycle
        return True

    return Update(record.id, mutate, record.revision)


def to_pending(record: AppWrapperRecord, reason: str, cycle: int, allow_dispatching: bool = False) -> Update:
    allowed = (PENDING, SCHEDULED, DISPATCHING) if allow_dispatching else (PENDING, SCHEDULED)

    def mutate(r: AppWrapperRecord) -> bool:
        status = r.message.status
        if r.phase not in allowed or (r.phase == DISPATCHING and status.job_name):
            return False
        if r.phase == PENDING and status.reason == reason:
            return False
        if r.phase != PENDING:
            status.cycle = cycle
        status.phase = PENDING
        status.reason = reason
        status.target_cluster = ""
        status.ClearField("planned_start")
        return True

    return Update(record.id, mutate, record.revision)


def to_scheduled(
    record: AppWrapperRecord,
    cluster: str,
    start_s: float,
    gco2: float,
    energy_wh: float,
    baseline: tuple[str, float, float] | None,
    cycle: int,
) -> Update:
    start = timestamp_from_seconds(start_s)

    def mutate(r: AppWrapperRecord) -> bool:
        if r.phase not in (PENDING, SCHEDULED):
            return False
        status = r.message.status
        same = (
            r.phase == SCHEDULED
            and status.target_cluster == cluster
            and status.planned_start == start
            and abs(status.carbon.planned_gco2 - gco2) < 1e-9
            and not (baseline and not r.baseline_cluster)
        )
        if same:
            return False
        status.phase = SCHEDULED
        status.target_cluster = cluster
        status.planned_start.CopyFrom(start)
        status.reason = ""
        status.carbon.planned_gco2 = gco2
        status.carbon.energy_wh = energy_wh
        status.cycle = cycle
        if baseline is not None and not r.baseline_cluster:
            r.baseline_cluster, r.baseline_start, status.carbon.counterfactual_gco2 = baseline
        return True

    return Update(record.id, mutate, record.revision)


def open_gate(r: AppWrapperRecord) -> bool:
    status = r.message.status
    if r.phase == SCHEDULED or (r.phase == DISPATCHING and not status.job_name):
        status.phase = DISPATCHING
        status.dispatch_attempts += 1
        status.reason = ""
        return True
    return False


def confirm_dispatch(job_name: str):
    def mutate(r: AppWrapperRecord) -> bool:
        status = r.message.status
        if r.phase not in (DISPATCHING, RUNNING) or status.job_name == job_name:
            return False
        status.job_name = job_name
        return True

    return mutate


def accounted(actual: float, counterfactual: float, energy: float):
    def mutate(r: AppWrapperRecord) -> bool:
        carbon = r.message.status.carbon
        carbon.actual_gco2 = actual
        carbon.counterfactual_gco2 = counterfactual
        carbon.energy_wh = energy
        r.needs_accounting = False
        r.accounted = True
        return True

    return mutate


def mark_cleaned(r: AppWrapperRecord) -> bool:
    """The Job of a cancelled AppWrapper is gone from its spoke."""
    if not r.needs_cleanup:
        return False
    r.needs_cleanup = False
    return True
