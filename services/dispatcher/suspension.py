"""Suspending and resuming an interruptible AppWrapper's Job by patching its spec.suspend.

Kubernetes semantics followed (docs/dispatcher.md, "Interruptible jobs"): suspending makes the Job controller
delete the Job's active pods (SIGTERM, then the grace period) and set the condition Suspended=True; resuming sets
it False (reason JobResumed), resets status.startTime to the resume time and makes new pods. activeDeadlineSeconds
counts from status.startTime, so each resume sets it again to the time left until the AppWrapper's deadline: a
pause never kills the Job, and the Job never outruns its deadline.

Exactly once: the patch carries the resourceVersion it was decided on, so a retried or concurrent patch of a Job
that has moved on is refused (409) and decided again from the Job as it is; a Job already in the asked state is
not patched at all. The suspension count (caspian.io/suspensions) therefore grows once per real suspension.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.common.errors import DEADLINE_PASSED, FailedPrecondition, NotFound
from services.common.timeconv import parse_time
from services.dispatcher.client import Obj
from services.dispatcher.errors import SpokeApiError
from services.dispatcher.manifests import APPWRAPPER_ID, DEADLINE, INTERRUPTIBLE, SUSPENSIONS, job_name_for

# Conflicts (someone else changed the Job between our read and our patch) tolerated before giving up.
PATCH_ATTEMPTS = 4

Call = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class SuspendResult:
    job_name: str
    namespace: str
    cluster: str
    changed: bool
    suspended: bool
    suspensions: int


def suspensions(job: Obj) -> int:
    raw = ((job.get("metadata") or {}).get("annotations") or {}).get(SUSPENSIONS, "0")
    try:
        return max(0, int(raw))
    except ValueError:
        return 0


def finished(job: Obj) -> bool:
    return any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
        for c in (job.get("status") or {}).get("conditions") or []
    )


def check_suspendable(job: Obj, app_wrapper_id: str) -> None:
    """Only an interruptible AppWrapper's own, unfinished Job is ever suspended or resumed."""
    meta = job.get("metadata") or {}
    name = f"{meta.get('namespace')}/{meta.get('name')}"
    owner = (meta.get("labels") or {}).get(APPWRAPPER_ID)
    if owner != app_wrapper_id:
        raise FailedPrecondition(f"Job {name} belongs to AppWrapper {owner!r}", field="app_wrapper_id")
    if (meta.get("annotations") or {}).get(INTERRUPTIBLE) != "true":
        raise FailedPrecondition(
            f"Job {name} was not dispatched as interruptible; it is never suspended or resumed",
            field="app_wrapper_id",
        )
    if finished(job):
        raise FailedPrecondition(f"Job {name} has finished", field="app_wrapper_id")


def suspend_patch(job: Obj, suspend: bool, now: datetime) -> Obj:
    """The merge patch that moves `job` to the asked state, guarded by the resourceVersion it was read at."""
    meta = job["metadata"]
    patch: Obj = {"metadata": {"resourceVersion": meta["resourceVersion"]}, "spec": {"suspend": suspend}}
    if suspend:
        patch["metadata"]["annotations"] = {SUSPENSIONS: str(suspensions(job) + 1)}
        return patch
    deadline = (meta.get("annotations") or {}).get(DEADLINE)
    if deadline:
        left = math.floor((parse_time(deadline) - now).total_seconds())
        if left <= 0:
            raise FailedPrecondition(
                f"the deadline has passed ({deadline}); the Job stays suspended",
                field="app_wrapper.deadline",
                reason=DEADLINE_PASSED,
            )
        patch["spec"]["activeDeadlineSeconds"] = left
    return patch


async def set_suspended(
    call: Call, client: Any, cluster: str, namespace: str, app_wrapper_id: str, suspend: bool, now: datetime
) -> SuspendResult:
    """Read the Job, and patch spec.suspend unless it already is as asked. `call(what, fn, *args)` runs a
    client call with the spoke's retries and breaker; SpokeApiError other than a conflict propagates."""
    name = job_name_for(app_wrapper_id)
    for _ in range(PATCH_ATTEMPTS):
        try:
            job = await call("read job", client.read_job, namespace, name)
        except SpokeApiError as err:
            if err.status == 404:
                raise NotFound(
                    f"no Job {namespace}/{name} for AppWrapper {app_wrapper_id!r} on spoke {cluster}",
                    field="app_wrapper_id",
                ) from None
            raise
        check_suspendable(job, app_wrapper_id)
        if bool((job.get("spec") or {}).get("suspend")) == suspend:
            return SuspendResult(name, namespace, cluster, False, suspend, suspensions(job))
        try:
            after = await call(
                "patch job", client.patch_job, namespace, name, suspend_patch(job, suspend, now)
            )
        except SpokeApiError as err:
            if err.status == 409:
                continue  # the Job moved on (or our own earlier attempt landed): decide again from it
            if err.status == 404:
                raise NotFound(f"Job {namespace}/{name} was deleted", field="app_wrapper_id") from None
            raise
        return SuspendResult(name, namespace, cluster, True, suspend, suspensions(after))
    raise FailedPrecondition(
        f"Job {namespace}/{name} kept changing while being {'suspended' if suspend else 'resumed'}; retry",
        field="app_wrapper_id",
    )
