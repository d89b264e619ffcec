"""What the kube-scheduler, the kubelets and the Job controller do, on the shared clock.

A Job gets one pod at a time. The pod waits (Pending, Unschedulable) until a Ready, untainted worker has room for
its requests, then runs for the Job's `caspian.io/expected-runtime-seconds` and succeeds. A Job labelled or
annotated `sim.caspian.io/fail=true` has its pods fail after `sim.caspian.io/fail-after-seconds` (default 0);
after `backoffLimit` retries (10 s, 20 s, ... apart, as the Job controller spaces them) the Job is Failed with
BackoffLimitExceeded. activeDeadlineSeconds fails it with DeadlineExceeded, and ttlSecondsAfterFinished deletes
it (and its pods) that long after it finished.

Every time is taken on the shared clock, and events are processed in time order at the time they were due: a
simulator that was stopped (SIGSTOP) and resumed reports the times the work would really have finished.
"""

from __future__ import annotations

import asyncio
import copy
import heapq
import itertools
import random
import string
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from kubernetes.utils.quantity import parse_quantity

from clusters.simulator.spec import SpokeSpec
from clusters.simulator.store import ApiError, Obj, Store, rfc3339
from services.common.clock import Clock
from services.common.timeconv import parse_time

RUNTIME_ANNOTATION = "caspian.io/expected-runtime-seconds"
FAIL_KEY = "sim.caspian.io/fail"
FAIL_AFTER_ANNOTATION = "sim.caspian.io/fail-after-seconds"
CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
KUBELET_VERSION = "v1.31.0"
POD_BACKOFF_SECONDS = 10.0
POD_BACKOFF_MAX_SECONDS = 360.0

_DONE = ("Complete", "Failed")


def _true_condition(obj: Obj, type_: str) -> bool:
    return any(
        c.get("type") == type_ and c.get("status") == "True"
        for c in obj.get("status", {}).get("conditions") or []
    )


def job_finished(job: Obj) -> bool:
    return any(_true_condition(job, t) for t in _DONE)


def pod_requests(pod_spec: Obj) -> dict[str, Decimal]:
    """Sum of the containers' requests; a container with limits only requests its limits, as defaulting does."""
    total: dict[str, Decimal] = {"pods": Decimal(1)}
    for container in pod_spec.get("containers") or []:
        resources = container.get("resources") or {}
        amounts = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
        for name, value in amounts.items():
            total[name] = total.get(name, Decimal(0)) + parse_quantity(value)
    return total


def _node_object(spoke: SpokeSpec, spec, index: int, created: str) -> Obj:
    labels = {
        "kubernetes.io/hostname": spec.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
        "caspian.io/spoke": spoke.name,
    }
    if spec.role != "control-plane" and spoke.zone:
        labels["caspian.io/zone"] = spoke.zone
    taints = []
    if spec.role == "control-plane":
        labels["node-role.kubernetes.io/control-plane"] = ""
        taints.append(dict(CONTROL_PLANE_TAINT))
    capacity = {"pods": "110", **spec.capacity}
    allocatable = {"pods": "110", **spec.allocatable}
    return {
        "metadata": {"name": spec.name, "labels": labels},
        "spec": {"taints": taints} if taints else {},
        "status": {
            "capacity": capacity,
            "allocatable": allocatable,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                    "lastHeartbeatTime": created,
                    "lastTransitionTime": created,
                }
            ],
            "nodeInfo": {
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": KUBELET_VERSION,
                "containerRuntimeVersion": "containerd://1.7.18",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "osImage": "caspian spoke simulator",
                "kernelVersion": "simulated",
                "bootID": str(uuid.uuid5(uuid.NAMESPACE_DNS, f"boot.{spec.name}")),
                "machineID": uuid.uuid5(uuid.NAMESPACE_DNS, f"machine.{spec.name}").hex,
                "systemUUID": str(uuid.uuid5(uuid.NAMESPACE_DNS, f"system.{spec.name}")),
            },
            "addresses": [
                {"type": "InternalIP", "address": f"172.18.0.{index + 2}"},
                {"type": "Hostname", "address": spec.name},
            ],
        },
    }


def node_ready(node: Obj) -> bool:
    return _true_condition(node, "Ready")


def schedulable(node: Obj) -> bool:
    if not node_ready(node) or node.get("spec", {}).get("unschedulable"):
        return False
    return not any(
        t.get("effect") in ("NoSchedule", "NoExecute") for t in node.get("spec", {}).get("taints") or []
    )


class JobController:
    def __init__(self, store: Store, clock: Clock, default_runtime_seconds: float = 60.0):
        self.store = store
        self.clock = clock
        self.default_runtime_seconds = default_runtime_seconds
        self._timers: list[tuple[datetime, int, str, str, str]] = []
        self._tokens: dict[tuple[str, str, str], int] = {}
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        # Indexes, so that scheduling costs the same with ten pods or ten thousand.
        self._pending: dict[tuple[str, str], None] = {}
        self._placed: dict[tuple[str, str], tuple[str, dict[str, Decimal]]] = {}
        self._used: dict[str, dict[str, Decimal]] = {}
        self._job_pods: dict[tuple[str, str], list[str]] = {}

    # Set-up ------------------------------------------------------------------------------------------

    def bootstrap(self, spec: SpokeSpec, namespaces: tuple[str, ...]) -> None:
        """Create the spoke's namespaces and nodes unless a restored state already has them."""
        created = rfc3339(self.clock.now())
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease", *namespaces):
            if self.store.find("namespaces", "", ns) is None:
                self.store.create("namespaces", {"metadata": {"name": ns}, "status": {"phase": "Active"}})
        for index, node in enumerate(spec.nodes):
            if self.store.find("nodes", "", node.name) is None:
                self.store.create("nodes", _node_object(spec, node, index, created))

    def resume(self) -> None:
        """Rebuild the indexes and timers from the stored objects (after a restore)."""
        pods = sorted(self.store.list("pods"), key=lambda p: int(p["metadata"]["resourceVersion"]))
        for pod in pods:
            key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
            job_name = (pod["metadata"].get("labels") or {}).get("batch.kubernetes.io/job-name")
            if job_name and pod["metadata"].get("ownerReferences"):
                self._job_pods.setdefault((key[0], job_name), []).append(key[1])
            if pod["status"].get("phase") not in ("Pending", "Running"):
                continue
            node = pod["spec"].get("nodeName")
            if node:
                self._place(key, node, pod_requests(pod["spec"]))
            else:
                self._pending[key] = None
            if pod["status"].get("phase") == "Running":
                self._arm_pod(pod)
        for job in self.store.list("jobs"):
            self._arm_job(job)
        self.poke()

    def poke(self) -> None:
        """Wake the loop: something changed that may move a timer."""
        self._wake.set()

    # Admission ---------------------------------------------------------------------------------------

    def admit_job(self, job: Obj) -> Obj:
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

    def label_job(self, job: Obj, uid: str) -> None:
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

    def job_created(self, job: Obj) -> Obj:
        """Start a stored Job's first pod; a pod that fits runs at once, so the Job's status changes once."""
        name, ns = job["metadata"]["name"], job["metadata"]["namespace"]
        self._arm_job(job)
        now = self.clock.now()
        self._start_pod(ns, name, now, update_job=False)
        self._schedule_pending(now)
        job = self.store.get("jobs", ns, name)
        if "active" not in job["status"]:  # the pod waits for room
            job = copy.deepcopy(job)
            job["status"].update(active=1, ready=0)
            job = self.store.update("jobs", job)
        self.poke()
        return job

    # Timers ------------------------------------------------------------------------------------------

    def _arm(self, due: datetime, kind: str, namespace: str, name: str) -> None:
        token = next(self._seq)
        self._tokens[(kind, namespace, name)] = token
        heapq.heappush(self._timers, (due, token, kind, namespace, name))

    def _disarm(self, kind: str, namespace: str, name: str) -> None:
        self._tokens.pop((kind, namespace, name), None)

    def _arm_job(self, job: Obj) -> None:
        meta, spec, status = job["metadata"], job["spec"], job.get("status") or {}
        ns, name = meta["namespace"], meta["name"]
        if job_finished(job):
            ttl = spec.get("ttlSecondsAfterFinished")
            done_at = status.get("completionTime") or _condition_time(job)
            if ttl is not None and done_at:
                self._arm(parse_time(done_at) + timedelta(seconds=int(ttl)), "ttl", ns, name)
            return
        deadline = spec.get("activeDeadlineSeconds")
        if deadline is not None:
            since = parse_time(status.get("startTime") or meta["creationTimestamp"])
            self._arm(since + timedelta(seconds=int(deadline)), "deadline", ns, name)

    def _arm_pod(self, pod: Obj) -> None:
        job = self._owner(pod)
        if job is None:
            return
        seconds = _runtime(job, self.default_runtime_seconds)
        if _fails(job):
            after = (job["metadata"].get("annotations") or {}).get(FAIL_AFTER_ANNOTATION, 0)
            seconds = min(seconds, float(after))
        due = parse_time(pod["status"]["startTime"]) + timedelta(seconds=seconds)
        self._arm(due, "pod", pod["metadata"]["namespace"], pod["metadata"]["name"])

    def next_due(self) -> datetime | None:
        while self._timers:
            due, token, kind, ns, name = self._timers[0]
            if self._tokens.get((kind, ns, name)) == token:
                return due
            heapq.heappop(self._timers)
        return None

    # The loop ----------------------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            self._wake.clear()
            self.reconcile()
            due = self.next_due()
            waits = [asyncio.ensure_future(self._wake.wait())]
            if due is not None:
                seconds = (due - self.clock.now()).total_seconds()
                waits.append(asyncio.ensure_future(self.clock.sleep(max(seconds, 0.0))))
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waits:
                    waiter.cancel()

    def reconcile(self) -> None:
        """Process every timer due by now, in time order, scheduling waiting pods as capacity frees up."""
        now = self.clock.now()
        self._schedule_pending(now)
        while True:
            due = self.next_due()
            if due is None or due > now:
                return
            _, token, kind, ns, name = heapq.heappop(self._timers)
            del self._tokens[(kind, ns, name)]
            if kind == "pod":
                self._pod_finished(ns, name, due)
            elif kind == "retry":
                self._start_pod(ns, name, due)
            elif kind == "deadline":
                self._deadline_exceeded(ns, name, due)
            elif kind == "ttl" and self.store.find("jobs", ns, name) is not None:
                self.delete_job(ns, name, "Background")
            self._schedule_pending(due)

    # Capacity ----------------------------------------------------------------------------------------

    def _place(self, key: tuple[str, str], node: str, needs: dict[str, Decimal]) -> None:
        self._pending.pop(key, None)
        self._placed[key] = (node, needs)
        used = self._used.setdefault(node, {})
        for name, amount in needs.items():
            used[name] = used.get(name, Decimal(0)) + amount

    def _release(self, key: tuple[str, str]) -> None:
        self._pending.pop(key, None)
        placed = self._placed.pop(key, None)
        if placed is None:
            return
        node, needs = placed
        used = self._used[node]
        for name, amount in needs.items():
            used[name] -= amount

    def _free_by_node(self) -> dict[str, dict[str, Decimal]]:
        free = {}
        for node in self.store.list("nodes"):
            if schedulable(node):
                name = node["metadata"]["name"]
                used = self._used.get(name, {})
                free[name] = {
                    k: parse_quantity(v) - used.get(k, Decimal(0))
                    for k, v in node["status"]["allocatable"].items()
                }
        return free

    def _schedule_pending(self, at: datetime) -> None:
        if not self._pending:
            return
        free = self._free_by_node()
        for key in list(self._pending):
            if not any(room.get("pods", Decimal(0)) >= 1 for room in free.values()):
                return  # every node is full: the rest keep waiting
            pod = self.store.find("pods", *key)
            if pod is None:
                self._pending.pop(key, None)
                continue
            needs = pod_requests(pod["spec"])
            for node, room in free.items():
                if all(room.get(name, Decimal(0)) >= amount for name, amount in needs.items()):
                    for name, amount in needs.items():
                        room[name] = room.get(name, Decimal(0)) - amount
                    self._run_pod(pod, node, needs, at)
                    break

    # Pods --------------------------------------------------------------------------------------------

    def _owner(self, pod: Obj) -> Obj | None:
        for ref in pod["metadata"].get("ownerReferences") or []:
            if ref.get("kind") == "Job":
                job = self.store.find("jobs", pod["metadata"]["namespace"], ref["name"])
                if job is not None and job["metadata"]["uid"] == ref.get("uid"):
                    return job
        return None

    def _pods_of(self, ns: str, job_name: str) -> list[Obj]:
        pods = (self.store.find("pods", ns, name) for name in self._job_pods.get((ns, job_name), ()))
        return [pod for pod in pods if pod is not None]

    def _start_pod(self, ns: str, job_name: str, at: datetime, update_job: bool = True) -> None:
        job = self.store.find("jobs", ns, job_name)
        if job is None or job_finished(job):
            return
        template = job["spec"]["template"]
        suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
        pod = {
            "metadata": {
                "name": f"{job_name[:57]}-{suffix}",
                "namespace": ns,
                "labels": dict(template["metadata"].get("labels") or {}),
                "annotations": dict(template["metadata"].get("annotations") or {}),
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
        pod = self.store.create("pods", pod)
        key = (ns, pod["metadata"]["name"])
        self._pending[key] = None
        self._job_pods.setdefault((ns, job_name), []).append(key[1])
        if update_job:
            job = copy.deepcopy(job)
            job["status"]["active"] = 1
            job["status"].setdefault("ready", 0)
            self.store.update("jobs", job)

    def _run_pod(self, pod: Obj, node: str, needs: dict[str, Decimal], at: datetime) -> None:
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
        self._place((pod["metadata"]["namespace"], pod["metadata"]["name"]), node, needs)
        pod = self.store.update("pods", pod)
        job = self._owner(pod)
        if job is not None:
            job = copy.deepcopy(job)
            job["status"].setdefault("startTime", when)
            job["status"].update(ready=1, active=1)
            job = self.store.update("jobs", job)
            self._arm_job(job)
        self._arm_pod(pod)

    def _pod_finished(self, ns: str, name: str, at: datetime) -> None:
        pod = self.store.find("pods", ns, name)
        if pod is None or pod["status"].get("phase") != "Running":
            return
        job = self._owner(pod)
        failed = job is not None and _fails(job)
        self._terminate_pod(pod, at, failed, "Error" if failed else "Completed")
        if job is not None:
            self._pod_ended(copy.deepcopy(job), failed, at)

    def _pod_ended(self, job: Obj, failed: bool, at: datetime) -> None:
        """The Job controller's reaction to its pod ending: complete, retry, or give up."""
        ns, name = job["metadata"]["namespace"], job["metadata"]["name"]
        status = job["status"]
        status.update(active=0, ready=0)
        when = rfc3339(at)
        if not failed:
            message = "Reached expected number of succeeded pods"
            status["succeeded"] = status.get("succeeded", 0) + 1
            status["completionTime"] = when
            status["conditions"] = [
                *(status.get("conditions") or []),
                _condition("SuccessCriteriaMet", "CompletionsReached", message, when),
                _condition("Complete", "CompletionsReached", message, when),
            ]
            job = self.store.update("jobs", job)
            self._disarm("deadline", ns, name)
            self._arm_job(job)
            return
        status["failed"] = status.get("failed", 0) + 1
        if status["failed"] > int(job["spec"].get("backoffLimit", 6)):
            self._fail_job(job, "BackoffLimitExceeded", "Job has reached the specified backoff limit", at)
            return
        self.store.update("jobs", job)
        delay = min(POD_BACKOFF_SECONDS * 2 ** (status["failed"] - 1), POD_BACKOFF_MAX_SECONDS)
        self._arm(at + timedelta(seconds=delay), "retry", ns, name)

    def _terminate_pod(self, pod: Obj, at: datetime, failed: bool, reason: str) -> None:
        pod = copy.deepcopy(pod)
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
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
        self._disarm("pod", *key)
        self._release(key)
        self.store.update("pods", pod)

    def _fail_job(self, job: Obj, reason: str, message: str, at: datetime) -> None:
        when = rfc3339(at)
        status = job["status"]
        status.update(active=0, ready=0)
        status["conditions"] = [
            *(status.get("conditions") or []),
            _condition("FailureTarget", reason, message, when),
            _condition("Failed", reason, message, when),
        ]
        job = self.store.update("jobs", job)
        ns, name = job["metadata"]["namespace"], job["metadata"]["name"]
        for kind in ("deadline", "retry"):
            self._disarm(kind, ns, name)
        self._arm_job(job)

    def _deadline_exceeded(self, ns: str, name: str, at: datetime) -> None:
        job = self.store.find("jobs", ns, name)
        if job is None or job_finished(job):
            return
        killed = 0
        for pod in self._pods_of(ns, name):
            if pod["status"].get("phase") in ("Pending", "Running"):
                self._terminate_pod(pod, at, True, "DeadlineExceeded")
                killed += 1
        job = copy.deepcopy(self.store.get("jobs", ns, name))
        job["status"]["failed"] = job["status"].get("failed", 0) + killed
        self._fail_job(job, "DeadlineExceeded", "Job was active longer than specified deadline", at)

    # Deletion ----------------------------------------------------------------------------------------

    def delete_job(self, ns: str, name: str, propagation: str) -> Obj:
        """Delete a Job; Background and Foreground take its pods with it, Orphan leaves them ownerless."""
        self.store.get("jobs", ns, name)
        pods = self._pods_of(ns, name)
        if propagation == "Foreground":
            for pod in pods:
                self._delete_pod(pod)
        deleted = self.store.delete("jobs", ns, name)
        for kind in ("deadline", "retry", "ttl"):
            self._disarm(kind, ns, name)
        self._job_pods.pop((ns, name), None)
        for pod in pods:
            if propagation == "Background":
                self._delete_pod(pod)
            elif propagation == "Orphan":
                orphan = copy.deepcopy(pod)
                orphan["metadata"].pop("ownerReferences", None)
                self.store.update("pods", orphan)
        self.poke()
        return deleted

    def delete_pod(self, ns: str, name: str) -> Obj:
        """A pod deleted through the API; an unfinished Job counts it as failed and makes another."""
        pod = self.store.get("pods", ns, name)
        job = self._owner(pod)
        running = pod["status"].get("phase") in ("Pending", "Running")
        deleted = self._delete_pod(pod)
        if job is not None and running and not job_finished(job):
            self._pod_ended(copy.deepcopy(job), True, self.clock.now())
        self.poke()
        return deleted

    def _delete_pod(self, pod: Obj) -> Obj:
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        self._disarm("pod", *key)
        self._release(key)
        return self.store.delete("pods", *key)

    def set_node_ready(self, name: str, ready: bool) -> Obj:
        node = copy.deepcopy(self.store.get("nodes", "", name))
        when = rfc3339(self.clock.now())
        for cond in node["status"]["conditions"]:
            if cond["type"] == "Ready":
                cond.update(
                    status="True" if ready else "Unknown",
                    reason="KubeletReady" if ready else "NodeStatusUnknown",
                    message="kubelet is posting ready status"
                    if ready
                    else "Kubelet stopped posting node status.",
                    lastTransitionTime=when,
                )
        node = self.store.update("nodes", node)
        self.poke()
        return node


def _condition(type_: str, reason: str, message: str, when: str) -> Obj:
    return {
        "type": type_,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastProbeTime": when,
        "lastTransitionTime": when,
    }


def _condition_time(job: Obj) -> str | None:
    for cond in job.get("status", {}).get("conditions") or []:
        if cond.get("type") in _DONE and cond.get("status") == "True":
            return cond.get("lastTransitionTime")
    return None


def _annotations_and_labels(job: Obj) -> dict[str, Any]:
    meta = job["metadata"]
    return {**(meta.get("labels") or {}), **(meta.get("annotations") or {})}


def _fails(job: Obj) -> bool:
    return str(_annotations_and_labels(job).get(FAIL_KEY, "")).lower() == "true"


def _runtime(job: Obj, default: float) -> float:
    raw = (job["metadata"].get("annotations") or {}).get(RUNTIME_ANNOTATION)
    try:
        return max(0.0, float(raw)) if raw is not None else default
    except ValueError:
        return default
