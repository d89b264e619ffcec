"""The spoke's nodes as the kubelets report them: their objects, readiness and schedulability."""

from __future__ import annotations

import copy
import uuid

from clusters.simulator.spec import NodeSpec, SpokeSpec
from clusters.simulator.store import Obj

CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
KUBELET_VERSION = "v1.31.0"


def true_condition(obj: Obj, type_: str) -> bool:
    return any(
        c.get("type") == type_ and c.get("status") == "True"
        for c in obj.get("status", {}).get("conditions") or []
    )


def node_object(spoke: SpokeSpec, spec: NodeSpec, index: int, created: str) -> Obj:
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
    return true_condition(node, "Ready")


def schedulable(node: Obj) -> bool:
    if not node_ready(node) or node.get("spec", {}).get("unschedulable"):
        return False
    return not any(
        t.get("effect") in ("NoSchedule", "NoExecute") for t in node.get("spec", {}).get("taints") or []
    )


def with_readiness(node: Obj, ready: bool, when: str) -> Obj:
    """A copy of `node` whose kubelet posts Ready (or has stopped posting, as when it is down)."""
    node = copy.deepcopy(node)
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
    return node
