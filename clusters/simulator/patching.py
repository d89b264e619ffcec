"""PATCH on a Job, as the API server does it: apply the patch (JSON merge, strategic merge or JSON patch), then
let through only the changes a batch/v1 Job allows after creation.

A Job's spec is immutable but for a few fields; the ones served here are `suspend`, `activeDeadlineSeconds`,
`parallelism` and `ttlSecondsAfterFinished`, plus labels and annotations. Anything else answers 422
"field is immutable", as a real API server does. `status` in a patch of the main resource is ignored.
A `metadata.resourceVersion` in the patch is a precondition: 409 Conflict when the object has moved on.
"""

from __future__ import annotations

import copy
from typing import Any

from clusters.simulator.store import ApiError, Obj

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"

MUTABLE_SPEC = ("suspend", "activeDeadlineSeconds", "parallelism", "ttlSecondsAfterFinished")
MUTABLE_METADATA = ("labels", "annotations", "resourceVersion")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, null removes a key, anything else replaces. For the Job fields
    served here a strategic merge patch gives the same result (no list in them is merged by key)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise ApiError(422, "Invalid", f"the JSON patch path {path!r} does not start with '/'")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def json_patch(target: Obj, ops: list) -> Obj:
    """RFC 6902 on objects (add, replace, remove, test); list indexes are not needed for a Job's mutable
    fields and are refused."""
    result = copy.deepcopy(target)
    for op in ops:
        if not isinstance(op, dict) or "path" not in op:
            raise ApiError(400, "BadRequest", "each JSON patch operation needs 'op' and 'path'")
        *parents, last = _pointer(op["path"])
        node = result
        for part in parents:
            child = node.get(part) if isinstance(node, dict) else None
            if not isinstance(child, dict):
                raise ApiError(422, "Invalid", f"the JSON patch path {op['path']!r} does not exist")
            node = child
        kind = op.get("op")
        if kind in ("add", "replace"):
            if kind == "replace" and last not in node:
                raise ApiError(422, "Invalid", f"replace of a missing path {op['path']!r}")
            node[last] = copy.deepcopy(op.get("value"))
        elif kind == "remove":
            if last not in node:
                raise ApiError(422, "Invalid", f"remove of a missing path {op['path']!r}")
            del node[last]
        elif kind == "test":
            if node.get(last) != op.get("value"):
                raise ApiError(422, "Invalid", f"the JSON patch test of {op['path']!r} failed")
        else:
            raise ApiError(422, "Invalid", f"unsupported JSON patch op {kind!r}")
    return result


def patched_job(current: Obj, patch: Any, content_type: str) -> Obj:
    """The Job after `patch`, checked against what may change; raises ApiError otherwise."""
    media = content_type.split(";")[0].strip().lower()
    if media in (MERGE, STRATEGIC):
        if not isinstance(patch, dict):
            raise ApiError(400, "BadRequest", "a merge patch must be a JSON object")
        wanted_rv = (patch.get("metadata") or {}).get("resourceVersion")
        result = merge_patch(current, {k: v for k, v in patch.items() if k != "status"})
    elif media == JSON_PATCH:
        if not isinstance(patch, list):
            raise ApiError(400, "BadRequest", "a JSON patch must be a list of operations")
        wanted_rv = None
        result = json_patch(current, patch)
        result["status"] = current.get("status")
    else:
        raise ApiError(
            415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {media}"
        )
    name = current["metadata"]["name"]
    if wanted_rv is not None and str(wanted_rv) != current["metadata"]["resourceVersion"]:
        raise ApiError(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on jobs.batch "{name}": the object has been modified; please apply '
            "your changes to the latest version and try again",
            {"name": name, "group": "batch", "kind": "jobs"},
        )
    problems = _immutable_changes(current, result)
    problems += _invalid_values(result)
    if problems:
        raise ApiError(
            422,
            "Invalid",
            f'Job.batch "{name}" is invalid: ' + ", ".join(problems),
            {"name": name, "group": "batch", "kind": "Job", "causes": [_cause(p) for p in problems]},
        )
    result["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
    return result


def _cause(problem: str) -> Obj:
    """A StatusCause, which kubectl prints one per line."""
    field, _, message = problem.partition(": ")
    return {"reason": "FieldValueInvalid", "message": message, "field": field}


def _immutable_changes(old: Obj, new: Obj) -> list[str]:
    problems = []
    for key in set(old) | set(new):
        if key in ("metadata", "spec", "status"):
            continue
        if old.get(key) != new.get(key):
            problems.append(f"{key}: Invalid value: field is immutable")
    for part, mutable in (("metadata", MUTABLE_METADATA), ("spec", MUTABLE_SPEC)):
        before, after = old.get(part) or {}, new.get(part) or {}
        for key in set(before) | set(after):
            if key not in mutable and before.get(key) != after.get(key):
                problems.append(f"{part}.{key}: Invalid value: field is immutable")
    return problems


def _invalid_values(job: Obj) -> list[str]:
    spec = job.get("spec") or {}
    problems = []
    if not isinstance(spec.get("suspend", False), bool):
        problems.append("spec.suspend: Invalid value: must be a boolean")
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and (
        isinstance(deadline, bool) or not isinstance(deadline, int) or deadline <= 0
    ):
        problems.append(f"spec.activeDeadlineSeconds: Invalid value: {deadline}: must be greater than 0")
    return problems
