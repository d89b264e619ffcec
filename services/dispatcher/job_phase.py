"""The phase of a batch/v1 Job object, as the hub is told it."""

from __future__ import annotations

import enum
from datetime import datetime

from services.common.timeconv import parse_time
from services.dispatcher.client import Obj


class JobPhase(enum.Enum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    UNKNOWN = "UNKNOWN"
    DELETED = "DELETED"
    SUSPENDED = "SUSPENDED"

    @property
    def finished(self) -> bool:
        return self in (JobPhase.SUCCEEDED, JobPhase.FAILED)


# Within one run segment phases only move forward: a Job whose pod is briefly not ready is still RUNNING. A
# suspension or a resume starts a new segment (a resumed Job is PENDING again until its new pod is ready).
RANK = {JobPhase.PENDING: 0, JobPhase.RUNNING: 1, JobPhase.SUCCEEDED: 2, JobPhase.FAILED: 2}


def _condition(job: Obj, type_: str) -> Obj | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_ and cond.get("status") == "True":
            return cond
    return None


def _time(value: str | None) -> datetime | None:
    return parse_time(value) if value else None


def suspension_times(job: Obj) -> tuple[datetime | None, datetime | None]:
    """(suspended_at, resumed_at): the Suspended condition's transition time while True, and while False
    (reason JobResumed: the Job was suspended once and runs again)."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Suspended":
            when = _time(cond.get("lastTransitionTime"))
            return (when, None) if cond.get("status") == "True" else (None, when)
    return None, None


def job_state(job: Obj) -> tuple[JobPhase, str, datetime | None, datetime | None]:
    """(phase, reason, start, finish) of a batch/v1 Job object.

    SUSPENDED once the Job controller has confirmed the suspension (condition Suspended=True), not when
    spec.suspend is merely set. RUNNING needs a ready pod (status.ready, Kubernetes >= 1.24); on a cluster that does not fill it, an active
    pod after startTime counts. A Failed Job's finish is the Failed condition's transition time.
    """
    status = job.get("status") or {}
    start = _time(status.get("startTime"))
    failed = _condition(job, "Failed")
    if failed is not None:
        reason = failed.get("reason") or "Failed"
        if failed.get("message"):
            reason = f"{reason}: {failed['message']}"
        return JobPhase.FAILED, reason, start, _time(failed.get("lastTransitionTime"))
    if _condition(job, "Complete") is not None:
        return JobPhase.SUCCEEDED, "", start, _time(status.get("completionTime"))
    if _condition(job, "Suspended") is not None:
        return JobPhase.SUSPENDED, "JobSuspended", start, None
    if "ready" in status:
        running = (status.get("ready") or 0) > 0
    else:
        running = (status.get("active") or 0) > 0 and start is not None
    return (JobPhase.RUNNING if running else JobPhase.PENDING), "", start, None
