"""What a kubelet does with a Job's pod: the pod object, its start on a node, how long its container runs (and
whether it fails), and its end."""

from __future__ import annotations

import copy
import random
import string
from datetime import datetime
from typing import Any

from clusters.simulator import suspension
from clusters.simulator.store import Obj, rfc3339

RUNTIME_ANNOTATION = "caspian.io/expected-runtime-seconds"
FAIL_KEY = "sim.caspian.io/fail"
FAIL_AFTER_ANNOTATION = "sim.caspian.io/fail-after-seconds"


def _annotations_and_labels(job: Obj) -> dict[str, Any]:
    meta = job["metadata"]
    return {**(meta.get("labels") or {}), **(meta.get("annotations") or {})}


def fails(job: Obj) -> bool:
    return str(_annotations_and_labels(job).get(FAIL_KEY, "")).lower() == "true"


def runtime(job: Obj, default: float) -> float:
    """The Job's whole expected runtime (its annotation, else the spoke's default)."""
    raw = (job["metadata"].get("annotations") or {}).get(RUNTIME_ANNOTATION)
    try:
        return max(0.0, float(raw)) if raw is not None else default
    except ValueError:
        return default


def run_seconds(job: Obj, default: float, pod: Obj | None = None) -> float:
    """How long the Job's container runs before it exits: what is left of its expected runtime (with a restore
    first after a resume, see suspension.py), or its fail-after time."""
    seconds = runtime(job, default)
    if pod is not None:
        seconds = suspension.pod_run_seconds(pod, seconds)
    if fails(job):
        after = (job["metadata"].get("annotations") or {}).get(FAIL_AFTER_ANNOTATION, 0)
        seconds = min(seconds, float(after))
    return seconds


def new_pod(job: Obj, at: datetime) -> Obj:
    """A Job's next pod, Pending and not yet scheduled."""
    ns, job_name = job["metadata"]["namespace"], job["metadata"]["name"]
    template = job["spec"]["template"]
    suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
    return {
        "metadata": {
            "name": f"{job_name[:57]}-{suffix}",
            "namespace": ns,
            "labels": dict(template["metadata"].get("labels") or {}),
            "annotations": {
                **(template["metadata"].get("annotations") or {}),
                **suspension.pod_start_annotations(job),
            },
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": job_name,
                    "uid": job["metadata"]["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {**copy.deepcopy(template["spec"]), "schedulerName": "default-scheduler"},
        "status": {
            "phase": "Pending",
            "qosClass": "Guaranteed",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "no node has enough free resources",
                    "lastTransitionTime": rfc3339(at),
                }
            ],
        },
    }


def running_pod(pod: Obj, node: str, at: datetime) -> Obj:
    """A copy of `pod`, bound to `node` and running since `at`."""
    pod = copy.deepcopy(pod)
    when = rfc3339(at)
    pod["spec"]["nodeName"] = node
    pod["status"].update(
        phase="Running",
        startTime=when,
        hostIP="172.18.0.2",
        podIP=f"10.244.{random.randint(1, 250)}.{random.randint(2, 250)}",
        conditions=[
            {"type": t, "status": "True", "lastTransitionTime": when}
            for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
        ],
        containerStatuses=[
            {
                "name": c["name"],
                "image": c.get("image", ""),
                "imageID": "",
                "ready": True,
                "started": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": when}},
            }
            for c in pod["spec"].get("containers") or []
        ],
    )
    return pod


def terminated_pod(pod: Obj, at: datetime, failed: bool, reason: str) -> Obj:
    """A copy of `pod` whose container exited at `at` (code 1 if it failed)."""
    pod = copy.deepcopy(pod)
    when = rfc3339(at)
    pod["status"]["phase"] = "Failed" if failed else "Succeeded"
    for cond in pod["status"].get("conditions") or []:
        if cond["type"] in ("Ready", "ContainersReady"):
            cond.update(status="False", reason="PodCompleted", lastTransitionTime=when)
    for cs in pod["status"].get("containerStatuses") or []:
        started = (cs.get("state", {}).get("running") or {}).get("startedAt", when)
        terminated = {
            "exitCode": 1 if failed else 0,
            "reason": reason,
            "startedAt": started,
            "finishedAt": when,
        }
        cs.update(ready=False, started=False, state={"terminated": terminated})
    return pod
