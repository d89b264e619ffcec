"""Server-side printing: the meta.k8s.io/v1 Table kubectl asks for (`Accept: application/json;as=Table`).

The columns are the ones a real API server prints for these kinds.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from clusters.simulator.store import Obj
from services.common.timeconv import parse_time


def human_duration(seconds: float) -> str:
    """kubectl's short durations: 45s, 5m10s, 3h4m, 2d5h, 400d."""
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    return f"{days}d"


def _age(obj: Obj, now: datetime) -> str:
    created = obj["metadata"].get("creationTimestamp")
    return human_duration((now - parse_time(created)).total_seconds()) if created else "<unknown>"


def _true(obj: Obj, type_: str) -> bool:
    return any(
        c.get("type") == type_ and c.get("status") == "True"
        for c in obj.get("status", {}).get("conditions") or []
    )


def _job_status(job: Obj) -> str:
    if job.get("metadata", {}).get("deletionTimestamp"):
        return "Terminating"
    for type_ in ("Failed", "Complete", "Suspended", "FailureTarget", "SuccessCriteriaMet"):
        if _true(job, type_):
            return type_
    return "Running"


def _job_row(job: Obj, now: datetime) -> list:
    status, spec = job.get("status", {}), job.get("spec", {})
    start = status.get("startTime")
    end = status.get("completionTime")
    duration = ""
    if start:
        finish = parse_time(end) if end else now
        duration = human_duration((finish - parse_time(start)).total_seconds())
    completions = f"{status.get('succeeded', 0)}/{spec.get('completions', 1)}"
    return [job["metadata"]["name"], _job_status(job), completions, duration, _age(job, now)]


def _node_row(node: Obj, now: datetime) -> list:
    ready = next((c for c in node["status"].get("conditions") or [] if c["type"] == "Ready"), None)
    status = "Ready" if ready and ready["status"] == "True" else "NotReady"
    if node.get("spec", {}).get("unschedulable"):
        status += ",SchedulingDisabled"
    labels = node["metadata"].get("labels") or {}
    roles = sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/"))
    version = node["status"].get("nodeInfo", {}).get("kubeletVersion", "")
    return [node["metadata"]["name"], status, ",".join(roles) or "<none>", _age(node, now), version]


def _pod_row(pod: Obj, now: datetime) -> list:
    statuses = pod["status"].get("containerStatuses") or []
    containers = pod["spec"].get("containers") or []
    ready = sum(1 for s in statuses if s.get("ready"))
    reason = pod["status"].get("phase", "Pending")
    for s in statuses:
        terminated = s.get("state", {}).get("terminated")
        if terminated and terminated.get("reason"):
            reason = terminated["reason"]
    restarts = sum(s.get("restartCount", 0) for s in statuses)
    return [pod["metadata"]["name"], f"{ready}/{len(containers)}", reason, restarts, _age(pod, now)]


def _namespace_row(ns: Obj, now: datetime) -> list:
    return [ns["metadata"]["name"], ns.get("status", {}).get("phase", "Active"), _age(ns, now)]


def _event_row(event: Obj, now: datetime) -> list:
    return [
        event.get("lastTimestamp", ""),
        event.get("type", ""),
        event.get("reason", ""),
        "",
        event.get("message", ""),
    ]


def _column(name: str, type_: str = "string", fmt: str = "", priority: int = 0) -> Obj:
    return {"name": name, "type": type_, "format": fmt, "description": name, "priority": priority}


_COLUMNS: dict[str, tuple[list[Obj], Callable[[Obj, datetime], list]]] = {
    "jobs": (
        [
            _column("Name", fmt="name"),
            _column("Status"),
            _column("Completions"),
            _column("Duration"),
            _column("Age"),
        ],
        _job_row,
    ),
    "nodes": (
        [
            _column("Name", fmt="name"),
            _column("Status"),
            _column("Roles"),
            _column("Age"),
            _column("Version"),
        ],
        _node_row,
    ),
    "pods": (
        [
            _column("Name", fmt="name"),
            _column("Ready"),
            _column("Status"),
            _column("Restarts", "integer"),
            _column("Age"),
        ],
        _pod_row,
    ),
    "namespaces": ([_column("Name", fmt="name"), _column("Status"), _column("Age")], _namespace_row),
    "events": (
        [_column("Last Seen"), _column("Type"), _column("Reason"), _column("Object"), _column("Message")],
        _event_row,
    ),
}


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def to_table(resource: str, items: list[Obj], resource_version: str, now: datetime) -> Obj:
    columns, row = _COLUMNS[resource]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": columns,
        "rows": [
            {
                "cells": row(item, now),
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": item["metadata"],
                },
            }
            for item in items
        ],
    }
