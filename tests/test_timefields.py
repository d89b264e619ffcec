"""Timestamps and Durations checked as protobuf defines them, at every service's door (the shared interceptor)."""

from __future__ import annotations

import pytest

from caspian.v1 import common_pb2, hub_pb2, optimizer_pb2
from services.common.errors import InvalidArgument
from services.common.timeconv import checked_duration, to_duration
from services.common.timefields import check_time_fields


def _refusal(message) -> str:
    with pytest.raises(InvalidArgument) as caught:
        check_time_fields(message)
    return caught.value.message


def test_a_mixed_sign_duration_deep_in_a_bulk_request_is_refused_by_path():
    request = hub_pb2.SubmitAppWrappersRequest()
    for _ in range(3):
        request.items.add().app_wrapper.template.expected_runtime.seconds = 10
    request.items[2].app_wrapper.template.expected_runtime.nanos = -999_999_999
    assert _refusal(request).startswith("items[2].app_wrapper.template.expected_runtime.nanos: ")


@pytest.mark.parametrize(
    ("seconds", "nanos", "field"),
    [
        (1, -1, "runtime.nanos"),
        (-1, 1, "runtime.nanos"),
        (0, 10**9, "runtime.nanos"),
        (4 * 10**11, 0, "runtime"),
    ],
)
def test_durations_protobuf_forbids(seconds, nanos, field):
    request = optimizer_pb2.SolveRequest()
    request.jobs.add(id="j", runtime={"seconds": seconds, "nanos": nanos})
    assert _refusal(request).startswith(f"jobs[0].{field}: ")


@pytest.mark.parametrize(("seconds", "nanos"), [(0, -1), (0, 10**9), (-(10**12), 0), (10**12, 0)])
def test_timestamps_protobuf_forbids(seconds, nanos):
    message = hub_pb2.SubmitAppWrapperRequest(app_wrapper=common_pb2.AppWrapper())
    message.app_wrapper.deadline.seconds = seconds
    message.app_wrapper.deadline.nanos = nanos
    assert "app_wrapper.deadline" in _refusal(message)


def test_valid_times_and_messages_without_any_pass():
    request = optimizer_pb2.SolveRequest()
    request.jobs.add(
        id="j", runtime={"seconds": -5, "nanos": -3}, deadline={"seconds": 0, "nanos": 999_999_999}
    )
    check_time_fields(request)
    check_time_fields(hub_pb2.ListAppWrappersRequest(page_size=5))


@pytest.mark.parametrize("value", [-0.5, -60.25, 0.0, 1.25, 59.9999999999, -1e-9])
def test_to_duration_always_gives_one_sign(value):
    d = to_duration(value)
    assert not (d.seconds > 0 and d.nanos < 0) and not (d.seconds < 0 and d.nanos > 0)
    assert abs(d.nanos) < 10**9
    assert abs(d.seconds + d.nanos / 1e9 - value) < 1e-6


def test_checked_duration_refuses_mixed_signs():
    with pytest.raises(InvalidArgument, match="same sign"):
        checked_duration(to_duration(10).__class__(seconds=10, nanos=-999_999_999), "runtime")
