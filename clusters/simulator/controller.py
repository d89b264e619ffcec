"""The Job controller and the loop that drives the simulated cluster on the shared clock.

A Job gets one pod at a time. The pod waits (Pending, Unschedulable) until a Ready, untainted worker has room for
its requests (binding.py), then runs (kubelet.py) for the Job's `caspian.io/expected-runtime-seconds` and
succeeds. A Job labelled or annotated `sim.caspian.io/fail=true` has its pods fail after
`sim.caspian.io/fail-after-seconds` (default 0); after `backoffLimit` retries (10 s, 20 s, ... apart, as the Job
controller spaces them) the Job is Failed with BackoffLimitExceeded. activeDeadlineSeconds fails it with
DeadlineExceeded, and ttlSecondsAfterFinished deletes it (and its pods) that long after it finished.

spec.suspend (at creation or by a PATCH) works as the Job controller's: a suspended Job has no pods (running ones
are deleted, and counted as failed, as a terminating pod is), the condition Suspended=True (JobSuspended) and no
startTime, so activeDeadlineSeconds does not run; a resume sets Suspended=False (JobResumed), startTime to the
resume time and makes a new pod, which runs what is left of the work (suspension.py).

Every time is taken on the shared clock, and events are processed in time order at the time they were due
(timers.py): a simulator that was stopped (SIGSTOP) and resumed reports the times the work would really have
finished.
"""

from __future__ import annotations

import asyncio
import copy
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from clusters.simulator import kubelet, suspension
from clusters.simulator.binding import Amounts, Binder, pod_requests
from clusters.simulator.conditions import condition, condition_time, set_condition
from clusters.simulator.nodes import node_object, true_condition, with_readiness
from clusters.simulator.spec import SpokeSpec
from clusters.simulator.store import Obj, Store, rfc3339
from clusters.simulator.timers import Timers
from services.common.clock import Clock
from services.common.timeconv import parse_time

POD_BACKOFF_SECONDS = 10.0
POD_BACKOFF_MAX_SECONDS = 360.0

_DONE = ("Complete", "Failed")


def job_finished(job: Obj) -> bool:
    return any(true_condition(job, t) for t in _DONE)


class JobController:
    def __init__(self, store: Store, clock: Clock, default_runtime_seconds: float = 60.0):
        self.store = store
        self.clock = clock
        self.default_runtime_seconds = default_runtime_seconds
        self.timers = Timers()
        self.binder = Binder()
        self._wake = asyncio.Event()
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
                self.store.create("nodes", node_object(spec, node, index, created))

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
                self.binder.place(key, node, pod_requests(pod["spec"]))
            else:
                self.binder.wait(key)
            if pod["status"].get("phase") == "Running":
                self._arm_pod(pod)
        for job in self.store.list("jobs"):
            self._arm_job(job)
        self.poke()

    def poke(self) -> None:
        """Wake the loop: something changed that may move a timer."""
        self._wake.set()

    def job_created(self, job: Obj) -> Obj:
        """Start a stored Job's first pod; a pod that fits runs at once, so the Job's status changes once."""
        name, ns = job["metadata"]["name"], job["metadata"]["namespace"]
        now = self.clock.now()
        if suspension.suspended(job):
            return self._mark_suspended(copy.deepcopy(job), now)
        self._arm_job(job)
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

    def _arm_job(self, job: Obj) -> None:
        meta, spec, status = job["metadata"], job["spec"], job.get("status") or {}
        ns, name = meta["namespace"], meta["name"]
        if job_finished(job):
            ttl = spec.get("ttlSecondsAfterFinished")
            done_at = status.get("completionTime") or condition_time(job)
            if ttl is not None and done_at:
                self.timers.arm(parse_time(done_at) + timedelta(seconds=int(ttl)), "ttl", ns, name)
            return
        deadline = spec.get("activeDeadlineSeconds")
        if deadline is not None and not suspension.suspended(job):
            since = parse_time(status.get("startTime") or meta["creationTimestamp"])
            self.timers.arm(since + timedelta(seconds=int(deadline)), "deadline", ns, name)

    def _arm_pod(self, pod: Obj) -> None:
        job = self._owner(pod)
        if job is None:
            return
        seconds = kubelet.run_seconds(job, self.default_runtime_seconds, pod)
        due = parse_time(pod["status"]["startTime"]) + timedelta(seconds=seconds)
        self.timers.arm(due, "pod", pod["metadata"]["namespace"], pod["metadata"]["name"])

    def next_due(self) -> datetime | None:
        return self.timers.next_due()

    # The loop ----------------------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            self._wake.clear()
            self.reconcile()
            due = self.next_due()
            waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._wake.wait())]
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
        while (timer := self.timers.pop_due(now)) is not None:
            due, kind, ns, name = timer
            if kind == "pod":
                self._pod_finished(ns, name, due)
            elif kind == "retry":
                self._start_pod(ns, name, due)
            elif kind == "deadline":
                self._deadline_exceeded(ns, name, due)
            elif kind == "ttl" and self.store.find("jobs", ns, name) is not None:
                self.delete_job(ns, name, "Background")
            self._schedule_pending(due)

    def _schedule_pending(self, at: datetime) -> None:
        bindings = self.binder.bindings(partial(self.store.list, "nodes"), partial(self.store.find, "pods"))
        for pod, node, needs in bindings:
            self._run_pod(pod, node, needs, at)

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
        if job is None or job_finished(job) or suspension.suspended(job):
            return
        pod = self.store.create("pods", kubelet.new_pod(job, at))
        key = (ns, pod["metadata"]["name"])
        self.binder.wait(key)
        self._job_pods.setdefault((ns, job_name), []).append(key[1])
        if update_job:
            job = copy.deepcopy(job)
            job["status"]["active"] = 1
            job["status"].setdefault("ready", 0)
            self.store.update("jobs", job)

    def _run_pod(self, pod: Obj, node: str, needs: Amounts, at: datetime) -> None:
        pod = kubelet.running_pod(pod, node, at)
        self.binder.place((pod["metadata"]["namespace"], pod["metadata"]["name"]), node, needs)
        pod = self.store.update("pods", pod)
        job = self._owner(pod)
        if job is not None:
            job = copy.deepcopy(job)
            job["status"].setdefault("startTime", pod["status"]["startTime"])
            job["status"].update(ready=1, active=1)
            job = self.store.update("jobs", job)
            self._arm_job(job)
        self._arm_pod(pod)

    def _pod_finished(self, ns: str, name: str, at: datetime) -> None:
        pod = self.store.find("pods", ns, name)
        if pod is None or pod["status"].get("phase") != "Running":
            return
        job = self._owner(pod)
        failed = job is not None and kubelet.fails(job)
        self._terminate_pod(pod, at, failed, "Error" if failed else "Completed")
        if job is not None:
            self._pod_ended(copy.deepcopy(job), failed, at)

    def _terminate_pod(self, pod: Obj, at: datetime, failed: bool, reason: str) -> None:
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        self.timers.disarm("pod", *key)
        self.binder.release(key)
        self.store.update("pods", kubelet.terminated_pod(pod, at, failed, reason))

    # Jobs --------------------------------------------------------------------------------------------

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
                condition("SuccessCriteriaMet", "CompletionsReached", message, when),
                condition("Complete", "CompletionsReached", message, when),
            ]
            job = self.store.update("jobs", job)
            self.timers.disarm("deadline", ns, name)
            self._arm_job(job)
            return
        status["failed"] = status.get("failed", 0) + 1
        if status["failed"] > int(job["spec"].get("backoffLimit", 6)):
            self._fail_job(job, "BackoffLimitExceeded", "Job has reached the specified backoff limit", at)
            return
        self.store.update("jobs", job)
        delay = min(POD_BACKOFF_SECONDS * 2 ** (status["failed"] - 1), POD_BACKOFF_MAX_SECONDS)
        self.timers.arm(at + timedelta(seconds=delay), "retry", ns, name)

    def _fail_job(self, job: Obj, reason: str, message: str, at: datetime) -> None:
        when = rfc3339(at)
        status = job["status"]
        status.update(active=0, ready=0)
        status["conditions"] = [
            *(status.get("conditions") or []),
            condition("FailureTarget", reason, message, when),
            condition("Failed", reason, message, when),
        ]
        job = self.store.update("jobs", job)
        ns, name = job["metadata"]["namespace"], job["metadata"]["name"]
        for kind in ("deadline", "retry"):
            self.timers.disarm(kind, ns, name)
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

    # Suspension, through a PATCH of spec -----------------------------------------------------------------

    def job_patched(self, before: Obj, after: Obj) -> Obj:
        """Store a patched Job, then react as the Job controller would to a change of spec.suspend or of
        activeDeadlineSeconds (two writes, as the API server's and then the controller's)."""
        job = self.store.update("jobs", after)
        if not job_finished(job):
            now = self.clock.now()
            if suspension.suspended(job) and not suspension.suspended(before):
                job = self._suspend(copy.deepcopy(job), now)
            elif suspension.suspended(before) and not suspension.suspended(job):
                job = self._resume(copy.deepcopy(job), now)
            else:
                self._arm_job(job)
        self.poke()
        return job

    def _suspend(self, job: Obj, at: datetime) -> Obj:
        """Delete the Job's pods; a checkpointing workload saves the progress its running pod made."""
        ns, name = job["metadata"]["namespace"], job["metadata"]["name"]
        runtime = kubelet.runtime(job, self.default_runtime_seconds)
        progress, deleted = suspension.progress(job), 0
        for pod in self._pods_of(ns, name):
            phase = pod["status"].get("phase")
            if phase not in ("Pending", "Running"):
                continue
            if phase == "Running" and suspension.checkpoints(job):
                progress = max(progress, suspension.progress_at(pod, runtime, at))
            self._delete_pod(pod)
            deleted += 1
        if suspension.checkpoints(job):
            job["metadata"].setdefault("annotations", {})[suspension.PROGRESS] = f"{progress:g}"
        job["status"]["failed"] = job["status"].get("failed", 0) + deleted
        if job["status"]["failed"] > int(job["spec"].get("backoffLimit", 6)):
            self._fail_job(job, "BackoffLimitExceeded", "Job has reached the specified backoff limit", at)
            return self.store.get("jobs", ns, name)
        return self._mark_suspended(job, at)

    def _mark_suspended(self, job: Obj, at: datetime) -> Obj:
        ns, name = job["metadata"]["namespace"], job["metadata"]["name"]
        for kind in ("deadline", "retry"):
            self.timers.disarm(kind, ns, name)
        status = job["status"]
        status.update(active=0, ready=0)
        status.pop("startTime", None)
        set_condition(status, "Suspended", "True", "JobSuspended", "Job suspended", rfc3339(at))
        return self.store.update("jobs", job)

    def _resume(self, job: Obj, at: datetime) -> Obj:
        """Resumed: startTime restarts (and activeDeadlineSeconds with it) and a new pod is made."""
        ns, name = job["metadata"]["namespace"], job["metadata"]["name"]
        when = rfc3339(at)
        job["status"]["startTime"] = when
        set_condition(job["status"], "Suspended", "False", "JobResumed", "Job resumed", when)
        job = self.store.update("jobs", job)
        self._arm_job(job)
        self._start_pod(ns, name, at)
        self._schedule_pending(at)
        return self.store.get("jobs", ns, name)

    # Deletion and nodes, through the API ---------------------------------------------------------------

    def delete_job(self, ns: str, name: str, propagation: str) -> Obj:
        """Delete a Job; Background and Foreground take its pods with it, Orphan leaves them ownerless."""
        self.store.get("jobs", ns, name)
        pods = self._pods_of(ns, name)
        if propagation == "Foreground":
            for pod in pods:
                self._delete_pod(pod)
        deleted = self.store.delete("jobs", ns, name)
        for kind in ("deadline", "retry", "ttl"):
            self.timers.disarm(kind, ns, name)
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
        self.timers.disarm("pod", *key)
        self.binder.release(key)
        return self.store.delete("pods", *key)

    def set_node_ready(self, name: str, ready: bool) -> Obj:
        node = with_readiness(self.store.get("nodes", "", name), ready, rfc3339(self.clock.now()))
        node = self.store.update("nodes", node)
        self.poke()
        return node
