"""Small SolveRequest builders for the optimizer tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from caspian.v1 import common_pb2, optimizer_pb2
from services.common.timeconv import to_duration, to_timestamp

START = datetime(2023, 6, 1, tzinfo=UTC)
HOUR = 3600
GIB = 1024**3


def cluster(name: str, cpu: int = 4000, memory: int = 16 * GIB, gpus: int = 0, watts_per_core: float = 10.0):
    return optimizer_pb2.SolveCluster(
        name=name,
        zone=name.upper(),
        capacity=common_pb2.Resources(cpu_millis=cpu, memory_bytes=memory, gpus=gpus),
        power=common_pb2.PowerModel(watts_per_core=watts_per_core, watts_per_gpu=300.0, pue=1.0),
    )


def job(
    job_id: str,
    cpu: int = 1000,
    memory: int = 0,
    gpus: int = 0,
    runtime_s: float = HOUR,
    earliest_slot: float | None = None,
    deadline_s: float | None = None,
    **fields,
):
    """earliest_slot in hours from START; deadline_s in seconds from START."""
    msg = optimizer_pb2.SolveJob(
        id=job_id,
        resources=common_pb2.Resources(cpu_millis=cpu, memory_bytes=memory, gpus=gpus),
        runtime=to_duration(runtime_s),
        **fields,
    )
    if earliest_slot is not None:
        msg.earliest_start.CopyFrom(to_timestamp(START + timedelta(hours=earliest_slot)))
    if deadline_s is not None:
        msg.deadline.CopyFrom(to_timestamp(START + timedelta(seconds=deadline_s)))
    return msg


def request(
    jobs, clusters, forecasts: dict[str, list[float]], slots: int | None = None, reservations=(), **options
):
    slots = slots if slots is not None else len(next(iter(forecasts.values())))
    req = optimizer_pb2.SolveRequest(
        jobs=jobs,
        clusters=clusters,
        grid=optimizer_pb2.TimeGrid(start=to_timestamp(START), slot=to_duration(HOUR), slots=slots),
        forecasts=[
            optimizer_pb2.ClusterForecast(cluster=name, gco2_per_kwh=values)
            for name, values in forecasts.items()
        ],
        reservations=list(reservations),
    )
    for key, value in options.items():
        if key == "time_limit_s":
            req.options.time_limit.CopyFrom(to_duration(value))
        else:
            setattr(req.options, key, value)
    return req


def placements_by_id(response) -> dict:
    return {p.job_id: p for p in response.placements}
