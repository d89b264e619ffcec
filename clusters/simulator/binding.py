"""What the kube-scheduler does: bind each waiting pod to the first Ready, untainted node with room for its
requests. The used amounts per node are kept as an index, so binding costs the same with ten pods or ten
thousand."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal

from kubernetes.utils.quantity import parse_quantity

from clusters.simulator.nodes import schedulable
from clusters.simulator.store import Obj

PodKey = tuple[str, str]
Amounts = dict[str, Decimal]


def pod_requests(pod_spec: Obj) -> Amounts:
    """Sum of the containers' requests; a container with limits only requests its limits, as defaulting does."""
    total: Amounts = {"pods": Decimal(1)}
    for container in pod_spec.get("containers") or []:
        resources = container.get("resources") or {}
        amounts = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
        for name, value in amounts.items():
            total[name] = total.get(name, Decimal(0)) + parse_quantity(value)
    return total


class Binder:
    """The pods waiting for a node, and what the bound ones use on each node."""

    def __init__(self) -> None:
        self.pending: dict[PodKey, None] = {}
        self._placed: dict[PodKey, tuple[str, Amounts]] = {}
        self._used: dict[str, Amounts] = {}

    def wait(self, key: PodKey) -> None:
        self.pending[key] = None

    def place(self, key: PodKey, node: str, needs: Amounts) -> None:
        self.pending.pop(key, None)
        self._placed[key] = (node, needs)
        used = self._used.setdefault(node, {})
        for name, amount in needs.items():
            used[name] = used.get(name, Decimal(0)) + amount

    def release(self, key: PodKey) -> None:
        self.pending.pop(key, None)
        placed = self._placed.pop(key, None)
        if placed is None:
            return
        node, needs = placed
        used = self._used[node]
        for name, amount in needs.items():
            used[name] -= amount

    def free_by_node(self, nodes: Iterable[Obj]) -> dict[str, Amounts]:
        free = {}
        for node in nodes:
            if schedulable(node):
                name = node["metadata"]["name"]
                used = self._used.get(name, {})
                free[name] = {
                    k: parse_quantity(v) - used.get(k, Decimal(0))
                    for k, v in node["status"]["allocatable"].items()
                }
        return free

    def bindings(
        self, list_nodes: Callable[[], Iterable[Obj]], find_pod: Callable[[str, str], Obj | None]
    ) -> Iterator[tuple[Obj, str, Amounts]]:
        """(pod, node, requests) for each waiting pod that fits, in arrival order. The caller runs the pod
        (which places it) before asking for the next one."""
        if not self.pending:
            return
        free = self.free_by_node(list_nodes())
        for key in list(self.pending):
            if not any(room.get("pods", Decimal(0)) >= 1 for room in free.values()):
                return  # every node is full: the rest keep waiting
            pod = find_pod(*key)
            if pod is None:
                self.pending.pop(key, None)
                continue
            needs = pod_requests(pod["spec"])
            for node, room in free.items():
                if all(room.get(name, Decimal(0)) >= amount for name, amount in needs.items()):
                    for name, amount in needs.items():
                        room[name] = room.get(name, Decimal(0)) - amount
                    yield pod, node, needs
                    break
