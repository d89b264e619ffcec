"""AppWrappers, clusters and intensity points as plain dicts for the pages and the browser.

Only fields the APIs give appear here; times are Unix seconds (None when the API leaves the field unset).
"""

from __future__ import annotations

from google.protobuf.message import Message

from caspian.v1 import carbon_pb2, common_pb2, hub_pb2
from services.common.timeconv import duration_seconds

PHASE_PREFIX = "APP_WRAPPER_PHASE_"
PHASES = [
    name.removeprefix(PHASE_PREFIX).lower()
    for name in common_pb2.AppWrapperPhase.keys()
    if not name.endswith("UNSPECIFIED")
]


def phase_name(phase: int) -> str:
    return common_pb2.AppWrapperPhase.Name(phase).removeprefix(PHASE_PREFIX).lower()


def seconds(message: Message, field: str) -> float | None:
    if not message.HasField(field):
        return None
    ts = getattr(message, field)
    return ts.seconds + ts.nanos / 1e9


def job_view(aw: common_pb2.AppWrapper) -> dict:
    status, carbon = aw.status, aw.status.carbon
    return {
        "id": aw.id,
        "name": aw.name,
        "tenant": aw.tenant,
        "phase": phase_name(status.phase),
        "cluster": status.target_cluster,
        "labels": dict(aw.labels),
        "created": seconds(aw, "created_at"),
        "earliest": seconds(aw, "earliest_start"),
        "deadline": seconds(aw, "deadline"),
        "planned": seconds(status, "planned_start"),
        "runtime": duration_seconds(aw.template.expected_runtime),
        "started": seconds(status, "started_at"),
        "finished": seconds(status, "finished_at"),
        "reason": status.reason,
        "planned_gco2": carbon.planned_gco2,
        "actual_gco2": carbon.actual_gco2,
        "counterfactual_gco2": carbon.counterfactual_gco2,
        "cycle": status.cycle,
        "revision": aw.revision,
    }


def cluster_view(cluster: common_pb2.ClusterInfo) -> dict:
    capacity, free = cluster.capacity, cluster.free
    return {
        "name": cluster.name,
        "zone": cluster.zone,
        "ready": cluster.ready,
        "not_ready_reason": cluster.not_ready_reason,
        "cpu_used": capacity.cpu_millis - free.cpu_millis,
        "cpu_capacity": capacity.cpu_millis,
        "memory_used": capacity.memory_bytes - free.memory_bytes,
        "memory_capacity": capacity.memory_bytes,
        "gpus_used": capacity.gpus - free.gpus,
        "gpus_capacity": capacity.gpus,
    }


def point_view(point: common_pb2.IntensityPoint) -> dict:
    return {
        "t": seconds(point, "time"),
        "d": duration_seconds(point.duration),
        "v": point.gco2_per_kwh,
    }


def carbon_state(reading: carbon_pb2.GetIntensityResponse | None) -> str:
    """live, stale (the data is older than the carbon service's threshold) or blind (no reading at all)."""
    if reading is None:
        return "blind"
    return "stale" if reading.source.stale else "live"


def cycle_flags(cycle: hub_pb2.CycleSummary) -> list[str]:
    """The degraded modes a cycle ran in, by name."""
    return [
        name
        for name, on in (
            ("carbon stale", cycle.carbon_stale),
            ("carbon blind", cycle.carbon_blind),
            ("fallback", cycle.fallback),
        )
        if on
    ]
