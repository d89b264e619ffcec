"""Malformed and hostile requests against the real hub and optimizer processes: each gets its contract status
with a message naming the field, none is INTERNAL, and both processes keep serving."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from caspian.v1 import common_pb2, hub_pb2, hub_pb2_grpc, optimizer_pb2, optimizer_pb2_grpc
from tests.reliability.hostile import (
    EXISTS,
    MAX_MESSAGE_BYTES,
    PRECONDITION,
    Case,
    hub_cases,
    solve_cases,
    solve_request,
    solve_time_cases,
)
from tests.reliability.support import app_wrapper, await_until, metric

Phase = common_pb2.AppWrapperPhase
INVALID_JOB = optimizer_pb2.UNPLACED_REASON_INVALID
# Every status message, whatever value it echoes, stays short (the interceptor cuts at 1,024 characters).
MAX_STATUS_CHARS = 1100
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", 2 * MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", 2 * MAX_MESSAGE_BYTES),
]
# What a Kubernetes pod spec could use to escape its container; no request field may carry any of them.
POD_ESCAPES = (
    "security_context",
    "privileged",
    "host_path",
    "volumes",
    "volume_mounts",
    "host_network",
    "host_pid",
    "host_ipc",
    "capabilities",
    "service_account",
    "node_name",
    "pod_spec",
    "manifest",
    "raw",
    "yaml",
)


async def call(channel: grpc.aio.Channel, case: Case, now: datetime) -> tuple[grpc.StatusCode, str]:
    """Send one case; return (status code, message)."""
    service, method = case.method.split("/")
    stub = (
        hub_pb2_grpc.HubServiceStub(channel)
        if service == "HubService"
        else optimizer_pb2_grpc.OptimizerServiceStub(channel)
    )
    request = case.build(now)
    try:
        if method == "WatchAppWrappers":
            stream = getattr(stub, method)(request, timeout=10)
            async for _ in stream:
                break
            stream.cancel()
        elif method == "SubmitAppWrappers":
            await getattr(stub, method)(iter(request), timeout=30)
        else:
            response = await getattr(stub, method)(request, timeout=30)
            if method == "Solve":
                # A job breaking the job rule is refused alone: its reason stands for the status message.
                refused = [p.reason for p in response.placements if p.unplaced_reason == INVALID_JOB]
                return grpc.StatusCode.OK, "; ".join(refused)
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


async def stateful_cases(stub: hub_pb2_grpc.HubServiceStub, now: datetime) -> list[tuple[Case, object]]:
    """Cases that need an object in a given state first: a duplicate id, and a cancel of a finished job."""
    original = app_wrapper(id="dup-case", now=now)
    await stub.SubmitAppWrapper(hub_pb2.SubmitAppWrapperRequest(app_wrapper=original), timeout=10)
    other = app_wrapper(id="dup-case", now=now)
    other.template.image = "python:3.11-slim"
    duplicate = Case(
        "same id, other spec",
        "HubService/SubmitAppWrapper",
        lambda _: hub_pb2.SubmitAppWrapperRequest(app_wrapper=other),
        EXISTS,
        "app_wrapper.id",
    )

    # Earliest start now and one second of slack: a cycle more than a second later (the hub's debounce waits
    # 5 s; the first trigger below waits 1.5 s) finds it can no longer be met, even started at once.
    late = app_wrapper(id="late-case", now=datetime.now(UTC), runtime_s=60, slack_s=1)
    await stub.SubmitAppWrapper(hub_pb2.SubmitAppWrapperRequest(app_wrapper=late), timeout=10)
    await asyncio.sleep(1.5)

    async def unschedulable() -> bool:
        await stub.TriggerSchedule(hub_pb2.TriggerScheduleRequest(), timeout=30)
        got = await stub.GetAppWrapper(hub_pb2.GetAppWrapperRequest(id="late-case"), timeout=10)
        return got.app_wrapper.status.phase == Phase.APP_WRAPPER_PHASE_UNSCHEDULABLE

    await await_until(unschedulable, within=30, what="late-case Unschedulable", interval=0.5)
    finished = Case(
        "cancel a finished AppWrapper",
        "HubService/CancelAppWrapper",
        lambda _: hub_pb2.CancelAppWrapperRequest(id="late-case"),
        PRECONDITION,
        "id",
    )
    return [duplicate, finished]


async def serving(address: str) -> int:
    async with grpc.aio.insecure_channel(address) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        return reply.status


async def solve_implemented(channel: grpc.aio.Channel) -> bool:
    stub = optimizer_pb2_grpc.OptimizerServiceStub(channel)
    try:
        await stub.Solve(solve_request(datetime.now(UTC)), timeout=30)
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
            return False
    return True


async def run_table(cases: list[Case], channel: grpc.aio.Channel, now: datetime) -> tuple[list[str], Counter]:
    wrong, codes = [], Counter()
    for case in cases:
        code, message = await call(channel, case, now)
        codes[code.name] += 1
        if code != case.code or case.text not in message:
            wrong.append(
                f"{case.name}: got {code.name} {message[:160]!r}, want {case.code.name} naming {case.text!r}"
            )
        elif len(message) > MAX_STATUS_CHARS:
            wrong.append(f"{case.name}: a {len(message)}-character message echoes too much")
    return wrong, codes


@pytest.mark.scenario("bad input: hub")
async def test_every_hostile_hub_request_gets_its_status_and_names_the_field(door_hub, scenario):
    now = datetime.now(UTC) + timedelta(seconds=5)
    internal_before = metric(door_hub.proc.metrics_address, "api_requests_total", code="INTERNAL")
    async with grpc.aio.insecure_channel(door_hub.address, options=CHANNEL_OPTIONS) as channel:
        cases = hub_cases() + await stateful_cases(hub_pb2_grpc.HubServiceStub(channel), now)
        wrong, codes = await run_table(cases, channel, now)
    internal = metric(door_hub.proc.metrics_address, "api_requests_total", code="INTERNAL") - internal_before
    scenario.lost, scenario.duplicated = None, None  # no data path here
    scenario.detail.update(
        cases=len(cases), by_status=dict(sorted(codes.items())), wrong=wrong, internal=int(internal)
    )
    assert len(cases) >= 40
    assert wrong == [], "\n".join(wrong)
    assert codes["INTERNAL"] == 0 and internal == 0
    assert door_hub.alive()
    assert await serving(door_hub.address) == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.scenario("bad input: optimizer Solve")
async def test_every_hostile_solve_request_gets_its_status_and_names_the_field(optimizer_process, scenario):
    now = datetime.now(UTC)
    internal_before = metric(optimizer_process.metrics_address, "api_requests_total", code="INTERNAL")
    async with grpc.aio.insecure_channel(optimizer_process.address, options=CHANNEL_OPTIONS) as channel:
        if not await solve_implemented(channel):
            scenario.detail["skipped"] = "the optimizer does not implement Solve yet"
            pytest.skip("the optimizer does not implement Solve yet")
        cases = solve_cases()
        wrong, codes = await run_table(cases, channel, now)
    internal = (
        metric(optimizer_process.metrics_address, "api_requests_total", code="INTERNAL") - internal_before
    )
    scenario.lost, scenario.duplicated = None, None  # no data path here
    scenario.detail.update(
        cases=len(cases), by_status=dict(sorted(codes.items())), wrong=wrong, internal=int(internal)
    )
    assert wrong == [], "\n".join(wrong)
    assert codes["INTERNAL"] == 0 and internal == 0
    assert optimizer_process.proc.poll() is None
    assert await serving(optimizer_process.address) == health_pb2.HealthCheckResponse.SERVING


async def test_solve_refuses_times_out_of_range_by_field(optimizer_process):
    now = datetime.now(UTC)
    async with grpc.aio.insecure_channel(optimizer_process.address) as channel:
        if not await solve_implemented(channel):
            pytest.skip("the optimizer does not implement Solve yet")
        wrong, _ = await run_table(solve_time_cases(), channel, now)
    assert optimizer_process.proc.poll() is None
    assert wrong == [], "\n".join(wrong)


def test_no_request_field_can_carry_a_privileged_or_host_path_pod_spec():
    """Templates name an image, command, args, env, resources and a runtime, nothing else: no request message
    anywhere in caspian.v1 has a field through which a security context, volume or host namespace could reach a
    Job. (The Job the dispatcher builds from a template is checked end to end in test_security.)"""
    from caspian.v1 import carbon_pb2, dispatcher_pb2, hub_pb2, optimizer_pb2

    assert [f.name for f in common_pb2.JobTemplate.DESCRIPTOR.fields] == [
        "image",
        "command",
        "args",
        "env",
        "resources",
        "expected_runtime",
    ]
    seen, carrying = set(), []

    def walk(descriptor, path):
        if descriptor.full_name in seen:
            return
        seen.add(descriptor.full_name)
        for f in descriptor.fields:
            if any(word in f.name.lower() for word in POD_ESCAPES):
                carrying.append(f"{path}.{f.name}")
            if f.message_type is not None and not f.message_type.full_name.startswith("google.protobuf"):
                walk(f.message_type, f"{path}.{f.name}")

    for module in (common_pb2, hub_pb2, optimizer_pb2, dispatcher_pb2, carbon_pb2):
        for message in module.DESCRIPTOR.message_types_by_name.values():
            walk(message, message.full_name)
    assert carrying == []
    # Maps and strings that do reach the Job: env values and labels are data, never spec.
    assert set(common_pb2.EnvVar.DESCRIPTOR.fields_by_name) == {"name", "value"}


async def test_undecodable_request_bytes_are_invalid_argument(door_hub):
    async with grpc.aio.insecure_channel(door_hub.address) as channel:
        raw = channel.unary_unary(
            "/caspian.v1.HubService/SubmitAppWrapper",
            request_serializer=lambda body: body,
            response_deserializer=lambda body: body,
        )
        codes = []
        for body in (
            b"\xff\xff\xff\xff",
            b"\x0a\x05ab",
            bytes([0x9B, 0x06]) * 2000 + bytes([0x9C, 0x06]) * 2000,
        ):
            try:
                await raw(body, timeout=10)
                codes.append(grpc.StatusCode.OK)
            except grpc.aio.AioRpcError as exc:
                codes.append(exc.code())
        assert door_hub.alive()
        assert codes == [grpc.StatusCode.INVALID_ARGUMENT] * 3
