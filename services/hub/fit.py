"""Whether an AppWrapper's resources fit the clusters its affinities allow, and what to say when none does."""

from __future__ import annotations

from collections.abc import Mapping

from caspian.v1 import common_pb2


def fits(resources: common_pb2.Resources, capacity: common_pb2.Resources) -> bool:
    return (
        resources.cpu_millis <= capacity.cpu_millis
        and resources.memory_bytes <= capacity.memory_bytes
        and resources.gpus <= capacity.gpus
    )


def eligible_clusters(app_wrapper: common_pb2.AppWrapper, clusters: Mapping[str, object]) -> list[str]:
    """Registered clusters the affinities allow, in name order."""
    required = app_wrapper.required_clusters
    excluded = app_wrapper.excluded_clusters
    if not required and not excluded:
        return sorted(clusters)
    excluded_set = set(excluded)
    return sorted({n for n in (required or clusters) if n in clusters and n not in excluded_set})


NO_CLUSTER = "no cluster is registered yet; register one first (`caspianctl clusters register <file>`)"
_UNITS = {"cpu_millis": "CPU millicores", "memory_bytes": "bytes of memory", "gpus": "GPUs"}


def why_nothing_fits(
    resources: common_pb2.Resources, capacities: Mapping[str, common_pb2.Resources]
) -> tuple[str, str]:
    """(dimension, message) for a request no allowed cluster holds: the dimension it exceeds and the most any
    allowed cluster offers; ("", message) when each dimension fits somewhere but no cluster holds all three."""
    allowed = ", ".join(capacities) if len(capacities) <= 4 else f"{len(capacities)} allowed clusters"
    for name in ("gpus", "cpu_millis", "memory_bytes"):
        asked = getattr(resources, name)
        most_name, most = max(
            ((n, getattr(c, name)) for n, c in capacities.items()), key=lambda item: item[1]
        )
        if asked <= most:
            continue
        if most == 0:
            if len(capacities) == 1:
                return name, f"{name}={asked}, but {allowed} has no {_UNITS[name]}"
            return name, f"{name}={asked}, but no allowed cluster ({allowed}) has {_UNITS[name]}"
        return name, (
            f"{name}={asked} is more than any allowed cluster offers: at most {most} on {most_name} "
            f"(allowed: {allowed})"
        )
    return "", (
        f"no allowed cluster ({allowed}) holds cpu_millis={resources.cpu_millis}, "
        f"memory_bytes={resources.memory_bytes} and gpus={resources.gpus} together"
    )
