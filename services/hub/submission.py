"""Submission: what the hub does to an AppWrapper as it comes in, before the store takes it.

Hub-owned fields are cleared, the identity (tenant, namespace, id) applied, every door check run, then the
defaults filled (earliest start now, deadline after the runtime plus the default slack, phase Pending). An id
from an idempotency key is deterministic, and the fingerprint of the spec tells a retry from a conflict.
`submit_batch` admits a batch: one store write for the items that pass, an outcome for every item.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from caspian.v1 import common_pb2
from services.common.errors import ContractError, PermissionDenied
from services.common.timeconv import duration_seconds, set_timestamp_seconds, timestamp_seconds
from services.hub.clusters import ClusterRegistry
from services.hub.phases import PENDING
from services.hub.store import AppWrapperStore, NewAppWrapper
from services.hub.validation import Limits, check_app_wrapper, check_request_id

DEFAULT_TENANT = "default"


@dataclass(frozen=True)
class SubmitResult:
    index: int
    id: str
    created: bool = False
    app_wrapper: common_pb2.AppWrapper | None = None
    error: ContractError | None = None


def fingerprint(message: common_pb2.AppWrapper) -> bytes:
    """Identity of a spec as submitted; a retry under the same id must match it."""
    return hashlib.sha256(message.SerializeToString(deterministic=True)).digest()[:16]


def id_for_request(tenant: str, request_id: str) -> str:
    """Deterministic id from an idempotency key: the same key always names the same AppWrapper."""
    return "aw-" + hashlib.sha256(f"{tenant}\x00{request_id}".encode()).hexdigest()[:24]


def visible_to(tenant: str, scope: str | None) -> bool:
    """Whether a caller confined to `scope` (None: every tenant) may see an object of `tenant`."""
    return scope is None or tenant == scope


class Admission:
    """Prepares submissions against the registered clusters and the door limits."""

    def __init__(self, clusters: ClusterRegistry, limits: Limits, slack_seconds: float):
        self.clusters = clusters
        self.limits = limits
        self.slack_seconds = slack_seconds
        self._known_templates: dict[bytes, float] = {}

    def prepare(
        self,
        message: common_pb2.AppWrapper,
        request_id: str,
        scope: str | None,
        namespaces: Sequence[str],
        now_s: float,
    ) -> tuple[NewAppWrapper | None, bytes, ContractError | None]:
        """Clear hub-owned fields, apply identity, check, then fill defaults. Never raises."""
        try:
            check_request_id(request_id)
            if scope is not None:
                if message.tenant and message.tenant != scope:
                    raise PermissionDenied(
                        f"you may submit for tenant {scope!r} only", field="app_wrapper.tenant"
                    )
                message.tenant = scope
            if namespaces and not message.namespace:
                message.namespace = namespaces[0]
            message.ClearField("status")
            message.ClearField("revision")
            message.ClearField("created_at")
            message.ClearField("updated_at")
            if not message.tenant:
                message.tenant = DEFAULT_TENANT
            if not message.id:
                message.id = (
                    id_for_request(message.tenant, request_id)
                    if request_id
                    else "aw-" + uuid.uuid4().hex[:24]
                )
        except ContractError as exc:
            return None, b"", exc
        digest = fingerprint(message)
        try:
            check_app_wrapper(
                message,
                clusters=self.clusters.clusters(),
                now=now_s,
                limits=self.limits,
                known_templates=self._known_templates,
            )
            # After the door checks: a namespace no one may use is INVALID_ARGUMENT, one this tenant may not
            # use is PERMISSION_DENIED.
            if namespaces and message.namespace not in namespaces:
                raise PermissionDenied(
                    f"your Jobs may use namespaces {', '.join(namespaces)} only",
                    field="app_wrapper.namespace",
                )
        except ContractError as exc:
            return None, digest, exc
        fill_defaults(message, now_s, self.slack_seconds)
        return NewAppWrapper(message, digest, request_id), digest, None


def fill_defaults(message: common_pb2.AppWrapper, now_s: float, slack_seconds: float) -> None:
    if not message.name:
        message.name = message.id
    if not message.tenant:
        message.tenant = DEFAULT_TENANT
    earliest_s = now_s
    if message.HasField("earliest_start"):
        given = message.earliest_start
        earliest_s = max(now_s, timestamp_seconds(given))
    else:
        set_timestamp_seconds(message.earliest_start, now_s)
    if not message.HasField("deadline"):
        runtime = duration_seconds(message.template.expected_runtime)
        set_timestamp_seconds(message.deadline, earliest_s + runtime + slack_seconds)
    message.status.phase = PENDING


async def submit_batch(
    admission: Admission,
    store: AppWrapperStore,
    items: Sequence[tuple[common_pb2.AppWrapper, str]],
    first_index: int,
    scope: str | None,
    namespaces: Sequence[str],
    now_s: float,
) -> list[SubmitResult]:
    """Admit a batch: the items that pass the door are stored in one write, each item gets its outcome.

    A refused item that repeats an acknowledged submission (same id and fingerprint, visible to the caller)
    answers as that submission even if it would no longer pass the door (say its cluster was deregistered
    since)."""
    results: list[SubmitResult | None] = [None] * len(items)
    valid: list[tuple[int, NewAppWrapper]] = []
    refused: list[tuple[int, bytes, ContractError]] = []
    for i, (message, request_id) in enumerate(items):
        new, digest, error = admission.prepare(message, request_id, scope, namespaces, now_s)
        if error is not None:
            refused.append((i, digest, error))
        else:
            assert new is not None
            valid.append((i, new))
    if valid:
        outcomes = await store.insert_app_wrappers([new for _, new in valid])
        for (i, new), outcome in zip(valid, outcomes, strict=True):
            record = outcome.record
            results[i] = SubmitResult(
                first_index + i,
                new.message.id,
                outcome.created,
                record.message if record is not None else None,
                outcome.error,
            )
    for i, digest, error in refused:
        message = items[i][0]
        existing = await store.get_app_wrapper(message.id) if digest and message.id else None
        if (
            existing is not None
            and existing.fingerprint == digest
            and visible_to(existing.message.tenant, scope)
        ):
            results[i] = SubmitResult(first_index + i, message.id, False, existing.message)
        else:
            results[i] = SubmitResult(first_index + i, message.id, False, None, error)
    return [r for r in results if r is not None]
