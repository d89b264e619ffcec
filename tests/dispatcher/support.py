"""Requests and clients the dispatcher tests share."""

from __future__ import annotations

from datetime import datetime, timedelta

from kubernetes import client as k8s

from caspian.v1 import common_pb2, dispatcher_pb2
from services.common.timeconv import to_duration, to_timestamp

GIB = 1 << 30


def app_wrapper(
    aw_id: str,
    *,
    cpu_millis: int = 500,
    memory_bytes: int = GIB,
    gpus: int = 0,
    runtime_s: float = 600,
    deadline: datetime | None = None,
    labels: dict[str, str] | None = None,
    image: str = "busybox:1.36",
) -> common_pb2.AppWrapper:
    aw = common_pb2.AppWrapper(
        id=aw_id,
        name=f"{aw_id} job",
        tenant="team-a",
        template=common_pb2.JobTemplate(
            image=image,
            command=["sh", "-c"],
            args=["echo hello"],
            env=[common_pb2.EnvVar(name="MODE", value="batch")],
            resources=common_pb2.Resources(cpu_millis=cpu_millis, memory_bytes=memory_bytes, gpus=gpus),
            expected_runtime=to_duration(runtime_s),
        ),
        labels=labels or {},
    )
    if deadline is not None:
        aw.deadline.CopyFrom(to_timestamp(deadline))
    return aw


def dispatch_request(aw: common_pb2.AppWrapper, cluster: str, gate: datetime | None = None, **kw):
    request = dispatcher_pb2.DispatchJobRequest(app_wrapper=aw, cluster=cluster, **kw)
    if gate is not None:
        request.gate_opened_at.CopyFrom(to_timestamp(gate))
    return request


def batch_api(url: str) -> k8s.BatchV1Api:
    """An official client straight at a simulator, as kubectl users and the dispatcher reach it."""
    configuration = k8s.Configuration(host=url)
    return k8s.BatchV1Api(k8s.ApiClient(configuration))


def core_api(url: str) -> k8s.CoreV1Api:
    return k8s.CoreV1Api(k8s.ApiClient(k8s.Configuration(host=url)))


def later(start: datetime, **delta) -> datetime:
    return start + timedelta(**delta)
