"""What a suspended Job's workload keeps, and what its next pod has left to do.

A real workload that checkpoints saves its progress when its pod gets SIGTERM (the Job controller deletes the
pods of a suspended Job) and restores it when a new pod starts, which takes a while; one that does not starts
again from zero. The simulator stands in for the workload and its checkpoint store:

- a Job annotated `caspian.io/checkpoints: "true"` keeps its progress in `sim.caspian.io/progress-seconds`
  (the simulated checkpoint), written when its running pod is deleted by a suspension;
- each pod records, when it is made, the progress it starts from and the restore time it pays first
  (`caspian.io/resume-overhead-seconds` of the Job, when there is a checkpoint to restore);
- a pod runs restore + (expected runtime - progress it starts from).
"""

from __future__ import annotations

from datetime import datetime

from clusters.simulator.store import Obj
from services.common.timeconv import parse_time

CHECKPOINTS = "caspian.io/checkpoints"
RESUME_OVERHEAD = "caspian.io/resume-overhead-seconds"
PROGRESS = "sim.caspian.io/progress-seconds"
POD_FROM = "sim.caspian.io/from-seconds"
POD_RESTORE = "sim.caspian.io/restore-seconds"


def _seconds(annotations: dict, key: str) -> float:
    try:
        return max(0.0, float(annotations.get(key, 0) or 0))
    except (TypeError, ValueError):
        return 0.0


def _annotations(obj: Obj) -> dict:
    return obj["metadata"].get("annotations") or {}


def checkpoints(job: Obj) -> bool:
    return str(_annotations(job).get(CHECKPOINTS, "")).lower() == "true"


def suspended(job: Obj) -> bool:
    return bool((job.get("spec") or {}).get("suspend"))


def progress(job: Obj) -> float:
    return _seconds(_annotations(job), PROGRESS) if checkpoints(job) else 0.0


def pod_start_annotations(job: Obj) -> dict[str, str]:
    """What a new pod of `job` starts from: the checkpointed progress and the restore time it pays first."""
    done = progress(job)
    restore = _seconds(_annotations(job), RESUME_OVERHEAD) if done > 0 else 0.0
    return {POD_FROM: f"{done:g}", POD_RESTORE: f"{restore:g}"}


def pod_run_seconds(pod: Obj, runtime: float) -> float:
    """How long a pod of a Job with this expected runtime runs: restore, then the work still to do."""
    notes = _annotations(pod)
    left = max(0.0, runtime - _seconds(notes, POD_FROM))
    return _seconds(notes, POD_RESTORE) + left


def progress_at(pod: Obj, runtime: float, at: datetime) -> float:
    """The progress a checkpoint saves when this running pod is stopped at `at`: what it started from plus
    the time it ran beyond its restore, at most the whole runtime."""
    notes = _annotations(pod)
    started = (pod.get("status") or {}).get("startTime")
    ran = (at - parse_time(started)).total_seconds() if started else 0.0
    gained = max(0.0, ran - _seconds(notes, POD_RESTORE))
    return min(runtime, _seconds(notes, POD_FROM) + gained)
