"""What the API server does to a Job before storing it: validation, defaulting, and the selector labels."""

from __future__ import annotations

from clusters.simulator.store import ApiError, Obj


def admit_job(job: Obj) -> Obj:
    """Validation and defaulting the API server does before storing a Job."""
    meta = job.setdefault("metadata", {})
    name = meta.get("name", "")
    spec = job.get("spec") or {}
    pod_spec = (spec.get("template") or {}).get("spec") or {}
    problems = []
    if not name:
        problems.append("metadata.name: Required value")
    if not pod_spec.get("containers"):
        problems.append("spec.template.spec.containers: Required value")
    restart = pod_spec.get("restartPolicy")
    if restart not in ("Never", "OnFailure"):
        problems.append(f'spec.template.spec.restartPolicy: Unsupported value: "{restart or ""}"')
    if problems:
        raise ApiError(
            422,
            "Invalid",
            f'Job.batch "{name}" is invalid: ' + ", ".join(problems),
            {"name": name, "group": "batch", "kind": "Job"},
        )
    job["spec"] = spec
    spec.setdefault("parallelism", 1)
    spec.setdefault("completions", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    job["status"] = {}
    return job


def label_job(job: Obj, uid: str) -> None:
    """Selector and template labels from the Job's uid, set at admission as the API server does."""
    name = job["metadata"]["name"]
    job["spec"]["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    tmeta = job["spec"]["template"].setdefault("metadata", {})
    tmeta["labels"] = {
        **(tmeta.get("labels") or {}),
        "batch.kubernetes.io/controller-uid": uid,
        "batch.kubernetes.io/job-name": name,
        "controller-uid": uid,
        "job-name": name,
    }
