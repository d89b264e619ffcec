"""The Kubernetes Job made for an AppWrapper: its deterministic name and its manifest."""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from datetime import datetime

from services.common.errors import DEADLINE_PASSED, FailedPrecondition, InvalidArgument
from services.common.timeconv import to_timestamp

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "caspian"
APPWRAPPER_ID = "caspian.io/appwrapper-id"
EXPECTED_RUNTIME = "caspian.io/expected-runtime-seconds"
APPWRAPPER_NAME = "caspian.io/appwrapper-name"
TENANT = "caspian.io/tenant"
DEADLINE = "caspian.io/deadline"
# An interruptible AppWrapper's Job: the dispatcher suspends and resumes only Jobs that say so.
INTERRUPTIBLE = "caspian.io/interruptible"
# The workload saves its progress on SIGTERM and restores it at start (a resume continues, not restarts).
CHECKPOINTS = "caspian.io/checkpoints"
RESUME_OVERHEAD = "caspian.io/resume-overhead-seconds"
MAX_PAUSES = "caspian.io/max-pauses"
# How many times the dispatcher has suspended the Job, written with each suspending patch.
SUSPENSIONS = "caspian.io/suspensions"
MANAGED_SELECTOR = f"{MANAGED_BY}={MANAGER}"
GPU_RESOURCE = "nvidia.com/gpu"
CONTAINER_NAME = "main"

_HASH_CHARS = 10
_MAX_NAME = 63
_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def job_name_for(appwrapper_id: str) -> str:
    """A DNS-1123 label of at most 63 characters: the id made safe, then a hash of the exact id.

    The same id always gives the same name, so a retried or replayed dispatch meets its own Job (409) instead of
    making a second one; ids that sanitise alike still differ by the hash.
    """
    digest = hashlib.sha256(appwrapper_id.encode("utf-8")).hexdigest()[:_HASH_CHARS]
    base = re.sub(r"[^a-z0-9]+", "-", appwrapper_id.lower()).strip("-")
    base = base[: _MAX_NAME - _HASH_CHARS - 1].rstrip("-") or "job"
    return f"{base}-{digest}"


def is_label_value(value: str) -> bool:
    return len(value) <= 63 and bool(_LABEL_NAME.match(value))


def is_label_key(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(_LABEL_NAME.match(name))


@dataclass(frozen=True)
class JobRequest:
    """What the dispatcher needs from an AppWrapper to make its Job."""

    app_wrapper_id: str
    image: str
    name: str = ""
    tenant: str = ""
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    cpu_millis: int = 0
    memory_bytes: int = 0
    gpus: int = 0
    expected_runtime_seconds: float = 0.0
    deadline: datetime | None = None
    labels: dict[str, str] = field(default_factory=dict)
    # Interruptible AppWrappers only (see docs/dispatcher.md, "Interruptible jobs").
    interruptible: bool = False
    resume_overhead_seconds: float = 0.0
    max_pauses: int | None = None
    checkpointing: bool = False
    suspended: bool = False


@dataclass(frozen=True)
class JobSettings:
    backoff_limit: int = 2
    ttl_seconds_after_finished: int = 86_400
    # A pod deleted by a suspension counts as failed, as a terminating pod does: an interruptible Job's
    # backoffLimit is raised by its max_pauses, or by this many when it has no limit.
    pause_allowance: int = 100


def validate(request: JobRequest) -> None:
    if not request.app_wrapper_id:
        raise InvalidArgument("is required", field="app_wrapper.id")
    if not is_label_value(request.app_wrapper_id):
        raise InvalidArgument(
            "must be a valid Kubernetes label value (at most 63 characters: letters, digits, '-', '_', '.')",
            field="app_wrapper.id",
        )
    if not request.image:
        raise InvalidArgument("is required", field="app_wrapper.template.image")
    for name, value in (
        ("cpu_millis", request.cpu_millis),
        ("memory_bytes", request.memory_bytes),
        ("gpus", request.gpus),
    ):
        if value < 0:
            raise InvalidArgument("must not be negative", field=f"app_wrapper.template.resources.{name}")
    if request.expected_runtime_seconds < 0:
        raise InvalidArgument("must not be negative", field="app_wrapper.template.expected_runtime")
    for key, label in request.labels.items():
        if not is_label_key(key):
            raise InvalidArgument("is not a valid Kubernetes label key", field=f"app_wrapper.labels[{key}]")
        if not is_label_value(label):
            raise InvalidArgument("is not a valid Kubernetes label value", field=f"app_wrapper.labels[{key}]")
    for i, (name, _) in enumerate(request.env):
        if not name:
            raise InvalidArgument("is required", field=f"app_wrapper.template.env[{i}].name")
    if not request.interruptible:
        for name, value in (("suspended", request.suspended), ("checkpointing", request.checkpointing)):
            if value:
                raise InvalidArgument("needs app_wrapper.interruptible to be set", field=name)
    if request.resume_overhead_seconds < 0:
        raise InvalidArgument("must not be negative", field="app_wrapper.interruptible.resume_overhead")
    if request.max_pauses is not None and request.max_pauses < 0:
        raise InvalidArgument("must not be negative", field="app_wrapper.interruptible.max_pauses")


def resource_list(request: JobRequest) -> dict[str, str]:
    amounts = {}
    if request.cpu_millis:
        amounts["cpu"] = f"{request.cpu_millis}m"
    if request.memory_bytes:
        amounts["memory"] = str(request.memory_bytes)
    if request.gpus:
        amounts[GPU_RESOURCE] = str(request.gpus)
    return amounts


def job_manifest(request: JobRequest, namespace: str, now: datetime, settings: JobSettings) -> dict:
    """The batch/v1 Job for `request`, as the JSON the API server takes.

    activeDeadlineSeconds is the time left until the AppWrapper's deadline, so Kubernetes itself stops a Job
    that would overrun it (Kubernetes counts it from status.startTime, which a resume resets, so each resume
    sets it again: suspension.py); requests equal limits (Guaranteed QoS), so what the optimizer planned is what
    runs.
    """
    validate(request)
    labels = {**request.labels, MANAGED_BY: MANAGER, APPWRAPPER_ID: request.app_wrapper_id}
    annotations = {EXPECTED_RUNTIME: str(math.ceil(request.expected_runtime_seconds))}
    if request.name:
        annotations[APPWRAPPER_NAME] = request.name
    if request.tenant:
        annotations[TENANT] = request.tenant
    if request.interruptible:
        annotations[INTERRUPTIBLE] = "true"
        annotations[RESUME_OVERHEAD] = str(math.ceil(request.resume_overhead_seconds))
        if request.checkpointing:
            annotations[CHECKPOINTS] = "true"
        if request.max_pauses is not None:
            annotations[MAX_PAUSES] = str(request.max_pauses)
    spec: dict = {
        "backoffLimit": backoff_limit(request, settings),
        "suspend": request.suspended,
        "ttlSecondsAfterFinished": settings.ttl_seconds_after_finished,
        "template": {
            "metadata": {"labels": {MANAGED_BY: MANAGER, APPWRAPPER_ID: request.app_wrapper_id}},
            "spec": {"restartPolicy": "Never", "containers": [_container(request)]},
        },
    }
    if request.deadline is not None:
        left = math.floor((request.deadline - now).total_seconds())
        if left <= 0:
            # Final: no retry can help. The reason lets the hub tell this apart from other refusals.
            raise FailedPrecondition(
                f"the deadline has passed ({_rfc3339(request.deadline)}; the dispatcher's clock reads "
                f"{_rfc3339(now)})",
                field="app_wrapper.deadline",
                reason=DEADLINE_PASSED,
            )
        spec["activeDeadlineSeconds"] = left
        annotations[DEADLINE] = _rfc3339(request.deadline)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name_for(request.app_wrapper_id),
            "namespace": namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": spec,
    }


def backoff_limit(request: JobRequest, settings: JobSettings) -> int:
    if not request.interruptible:
        return settings.backoff_limit
    allowance = settings.pause_allowance if request.max_pauses is None else request.max_pauses
    return settings.backoff_limit + allowance


def _container(request: JobRequest) -> dict:
    container: dict = {"name": CONTAINER_NAME, "image": request.image}
    if request.command:
        container["command"] = list(request.command)
    if request.args:
        container["args"] = list(request.args)
    if request.env:
        container["env"] = [{"name": name, "value": value} for name, value in request.env]
    amounts = resource_list(request)
    if amounts:
        container["resources"] = {"requests": dict(amounts), "limits": dict(amounts)}
    return container


def _rfc3339(when: datetime) -> str:
    return to_timestamp(when).ToJsonString()
