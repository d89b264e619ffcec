"""A spoke's free capacity from its nodes, pods and waiting Jobs, in the resources the optimizer plans with."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kubernetes.utils.quantity import parse_quantity

from services.dispatcher.client import Obj

GPU = "nvidia.com/gpu"


@dataclass(frozen=True)
class Resources:
    cpu_millis: int = 0
    memory_bytes: int = 0
    gpus: int = 0

    @classmethod
    def from_quantities(cls, amounts: dict[str, Any] | None) -> Resources:
        amounts = amounts or {}
        cpu = parse_quantity(amounts.get("cpu", 0)) * 1000
        return cls(
            cpu_millis=int(cpu.to_integral_value(rounding="ROUND_CEILING")),
            memory_bytes=int(parse_quantity(amounts.get("memory", 0))),
            gpus=int(parse_quantity(amounts.get(GPU, 0))),
        )

    def __add__(self, other: Resources) -> Resources:
        return Resources(
            self.cpu_millis + other.cpu_millis, self.memory_bytes + other.memory_bytes, self.gpus + other.gpus
        )

    def __sub__(self, other: Resources) -> Resources:
        return Resources(
            self.cpu_millis - other.cpu_millis, self.memory_bytes - other.memory_bytes, self.gpus - other.gpus
        )

    def clamped(self) -> Resources:
        return Resources(max(0, self.cpu_millis), max(0, self.memory_bytes), max(0, self.gpus))


@dataclass(frozen=True)
class Capacity:
    allocatable: Resources
    free: Resources
    ready_nodes: int


def _condition(obj: Obj, type_: str) -> str | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return cond.get("status")
    return None


def node_usable(node: Obj) -> bool:
    """Ready, schedulable and without a NoSchedule/NoExecute taint (so not a kind control-plane)."""
    spec = node.get("spec") or {}
    if _condition(node, "Ready") != "True" or spec.get("unschedulable"):
        return False
    return not any(t.get("effect") in ("NoSchedule", "NoExecute") for t in spec.get("taints") or [])


def pod_requests(pod_spec: Obj) -> Resources:
    """A pod's requests; a container that gives only limits requests its limits, as API defaulting does."""
    total = Resources()
    for container in pod_spec.get("containers") or []:
        resources = container.get("resources") or {}
        total += Resources.from_quantities(
            {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
        )
    return total


def free_capacity(
    nodes: Iterable[Obj], pods: Iterable[Obj], active_jobs: Iterable[tuple[str, Resources]]
) -> Capacity:
    """allocatable of usable nodes - requests of their non-terminal pods - requests of active Jobs with no pod
    on such a node yet (waiting Jobs hold their place)."""
    usable = {n["metadata"]["name"]: n for n in nodes if node_usable(n)}
    allocatable = Resources()
    for node in usable.values():
        allocatable += Resources.from_quantities((node.get("status") or {}).get("allocatable"))
    used = Resources()
    placed_jobs: set[str] = set()
    for pod in pods:
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        if (pod.get("spec") or {}).get("nodeName") not in usable:
            continue
        used += pod_requests(pod.get("spec") or {})
        uid = (pod["metadata"].get("labels") or {}).get("batch.kubernetes.io/controller-uid")
        if uid:
            placed_jobs.add(uid)
    for uid, requests in active_jobs:
        if uid not in placed_jobs:
            used += requests
    return Capacity(allocatable, (allocatable - used).clamped(), len(usable))
