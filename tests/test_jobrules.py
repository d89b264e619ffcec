"""One job rule for the hub's door and the optimizer: whatever the door accepts, the optimizer can solve."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from caspian.v1 import common_pb2, optimizer_pb2
from services.common.errors import InvalidArgument
from services.hub.validation import Limits, check_app_wrapper
from services.optimizer.server import jobs_from_proto

NOW = datetime(2023, 6, 1, tzinfo=UTC)
GIB = 1 << 30
CLUSTER = common_pb2.ClusterInfo(
    name="east", zone="KR", capacity=common_pb2.Resources(cpu_millis=64_000, memory_bytes=256 * GIB, gpus=8)
)


def _optimizer_refusal(app_wrapper: common_pb2.AppWrapper) -> str | None:
    """The job as the hub sends it (the runtime as submitted) through the optimizer's per-job check."""
    request = optimizer_pb2.SolveRequest(clusters=[optimizer_pb2.SolveCluster(name="east", zone="KR")])
    request.jobs.add(
        id="j",
        resources=app_wrapper.template.resources,
        runtime=app_wrapper.template.expected_runtime,
        earliest_start=app_wrapper.earliest_start,
        deadline=app_wrapper.deadline,
        required_clusters=app_wrapper.required_clusters,
    )
    _, refused = jobs_from_proto(request)
    return refused[0].reason if refused else None


@settings(max_examples=300, deadline=None)
@given(
    seconds=st.integers(-5, 90_000),
    nanos=st.integers(-999_999_999, 999_999_999),
    cpu=st.integers(-1, 70_000),
    memory=st.integers(-1, 2 * GIB),
    gpus=st.integers(-1, 9),
    deadline_in=st.integers(-3600, 3 * 86400),
)
def test_whatever_the_door_accepts_the_optimizer_accepts(seconds, nanos, cpu, memory, gpus, deadline_in):
    app_wrapper = common_pb2.AppWrapper(
        template=common_pb2.JobTemplate(
            image="busybox",
            resources=common_pb2.Resources(cpu_millis=cpu, memory_bytes=memory, gpus=gpus),
            expected_runtime={"seconds": seconds, "nanos": nanos},
        ),
        earliest_start={"seconds": int(NOW.timestamp())},
        deadline={"seconds": int(NOW.timestamp()) + deadline_in},
    )
    try:
        check_app_wrapper(app_wrapper, clusters={"east": CLUSTER}, now=NOW.timestamp(), limits=Limits())
    except InvalidArgument:
        return
    assert _optimizer_refusal(app_wrapper) is None


def test_a_nanosecond_runtime_is_refused_by_both():
    app_wrapper = common_pb2.AppWrapper(
        template=common_pb2.JobTemplate(
            image="busybox",
            resources=common_pb2.Resources(cpu_millis=1000, memory_bytes=GIB),
            expected_runtime={"seconds": 0, "nanos": 1},
        )
    )
    try:
        check_app_wrapper(app_wrapper, clusters={"east": CLUSTER}, now=NOW.timestamp(), limits=Limits())
    except InvalidArgument as exc:
        door = exc.message
    else:
        door = None
    assert door is not None and door.startswith("app_wrapper.template.expected_runtime:")
    assert _optimizer_refusal(app_wrapper).startswith("jobs[0].runtime:")
