"""Spoke definitions: which nodes a simulated spoke has, from clusters/spokes.yaml."""

from __future__ import annotations

import pathlib
from dataclasses import dataclass, field

import yaml

SPOKES_FILE = pathlib.Path(__file__).resolve().parent.parent / "spokes.yaml"
DEFAULT_SPOKES = ("carbon-kr", "carbon-jp", "carbon-cn")


@dataclass(frozen=True)
class NodeSpec:
    name: str
    role: str
    capacity: dict[str, str]
    allocatable: dict[str, str]


@dataclass(frozen=True)
class SpokeSpec:
    name: str
    zone: str
    nodes: tuple[NodeSpec, ...] = field(default_factory=tuple)


def _node_names(spoke: str, roles: list[str]) -> list[str]:
    """kind's naming: <cluster>-control-plane, <cluster>-worker, <cluster>-worker2, ..."""
    names, workers = [], 0
    for role in roles:
        if role == "control-plane":
            names.append(f"{spoke}-control-plane")
        else:
            workers += 1
            names.append(f"{spoke}-worker" + ("" if workers == 1 else str(workers)))
    return names


def load_spokes(path: pathlib.Path | str = SPOKES_FILE) -> dict[str, SpokeSpec]:
    with open(path, encoding="utf-8") as fh:
        raw = yaml.safe_load(fh)
    spokes = {}
    for item in raw["spokes"]:
        roles = [node["role"] for node in item["nodes"]]
        nodes = tuple(
            NodeSpec(
                name=name,
                role=node["role"],
                capacity={k: str(v) for k, v in node["capacity"].items()},
                allocatable={k: str(v) for k, v in node["allocatable"].items()},
            )
            for name, node in zip(_node_names(item["name"], roles), item["nodes"], strict=True)
        )
        spokes[item["name"]] = SpokeSpec(item["name"], item.get("zone", ""), nodes)
    return spokes


def spoke_spec(name: str, path: pathlib.Path | str = SPOKES_FILE) -> SpokeSpec:
    """The named spoke; a name not in the file gets the shape of carbon-kr under its own name."""
    spokes = load_spokes(path)
    if name in spokes:
        return spokes[name]
    template = spokes[DEFAULT_SPOKES[0]]
    roles = [node.role for node in template.nodes]
    nodes = tuple(
        NodeSpec(new, node.role, node.capacity, node.allocatable)
        for new, node in zip(_node_names(name, roles), template.nodes, strict=True)
    )
    return SpokeSpec(name, "", nodes)
