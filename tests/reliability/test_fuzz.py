"""Property-based fuzz over real gRPC: generated SubmitAppWrapper and Solve requests, mostly hostile, some
valid. Whatever arrives, the answer is a contract status (never INTERNAL or UNKNOWN), an INVALID_ARGUMENT names
its field, and the process is alive and SERVING at the end. Derandomized, with a fixed number of examples."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from caspian.v1 import common_pb2, hub_pb2, hub_pb2_grpc, optimizer_pb2, optimizer_pb2_grpc
from tests.reliability.hostile import solve_request
from tests.reliability.support import metric, scale

INT64 = st.integers(-(2**63), 2**63 - 1)
INT32 = st.integers(-(2**31), 2**31 - 1)
HOSTILE_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=80
) | st.sampled_from(
    ["", "a", "x" * 300, "job\x00", "\x1b[2J", "; rm -rf /", "$(id)", "../..", "Ünïcode", "a b"]
)
NAMES = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True) | HOSTILE_TEXT
IMAGES = st.sampled_from(
    ["busybox:1.36", "python:3.11-slim", "registry.example.com:5000/team/app@sha256:" + "a" * 64]
)
IMAGES = IMAGES | HOSTILE_TEXT
CLUSTERS = st.sampled_from(["carbon-kr", "carbon-jp", "carbon-cn", "nowhere", ""])
NOW = int(datetime.now(UTC).timestamp())
TIMES = st.one_of(st.integers(NOW - 86400, NOW + 40 * 86400), INT64)
ALLOWED = {
    "OK",
    "INVALID_ARGUMENT",
    "ALREADY_EXISTS",
    "NOT_FOUND",
    "FAILED_PRECONDITION",
    "RESOURCE_EXHAUSTED",
}
FIELD_PREFIXES = ("app_wrapper", "request_id")


VALID_IDS = st.from_regex(r"fz-[a-z0-9]{1,12}", fullmatch=True)


def _time(ts, draw) -> None:
    ts.seconds = draw(TIMES)
    ts.nanos = draw(st.one_of(st.just(0), INT32))


# One hostile change each; an example applies none to three of them to a valid AppWrapper, so every door
# check is reached both with and without the others failing first.
MUTATIONS = {
    "id": lambda m, d: setattr(m, "id", d(NAMES)),
    "name": lambda m, d: setattr(m, "name", d(NAMES)),
    "tenant": lambda m, d: setattr(m, "tenant", d(NAMES)),
    "namespace": lambda m, d: setattr(
        m, "namespace", d(st.one_of(st.sampled_from(["kube-system", "prod"]), NAMES))
    ),
    "priority": lambda m, d: setattr(m, "priority", d(INT32)),
    "labels": lambda m, d: m.labels.update(d(st.dictionaries(NAMES, NAMES, min_size=1, max_size=4))),
    "required": lambda m, d: m.required_clusters.extend(d(st.lists(CLUSTERS, min_size=1, max_size=2))),
    "preferred": lambda m, d: m.preferred_clusters.extend(d(st.lists(CLUSTERS, min_size=1, max_size=2))),
    "excluded": lambda m, d: m.excluded_clusters.extend(d(st.lists(CLUSTERS, min_size=1, max_size=3))),
    "no template": lambda m, d: m.ClearField("template"),
    "image": lambda m, d: setattr(m.template, "image", d(IMAGES)),
    "command": lambda m, d: m.template.command.extend(d(st.lists(HOSTILE_TEXT, min_size=1, max_size=3))),
    "args": lambda m, d: m.template.args.extend(d(st.lists(HOSTILE_TEXT, min_size=1, max_size=300))),
    "env": lambda m, d: m.template.env.extend(
        common_pb2.EnvVar(name=n, value=v)
        for n, v in d(st.lists(st.tuples(NAMES, HOSTILE_TEXT), max_size=70))
    ),
    "cpu": lambda m, d: setattr(m.template.resources, "cpu_millis", d(INT64)),
    "memory": lambda m, d: setattr(m.template.resources, "memory_bytes", d(INT64)),
    "gpus": lambda m, d: setattr(m.template.resources, "gpus", d(INT32)),
    "runtime": lambda m, d: setattr(m.template.expected_runtime, "seconds", d(INT64)),
    "runtime nanos": lambda m, d: setattr(m.template.expected_runtime, "nanos", d(INT32)),
    "earliest start": lambda m, d: _time(m.earliest_start, d),
    "deadline": lambda m, d: _time(m.deadline, d),
}


@st.composite
def app_wrappers(draw) -> hub_pb2.SubmitAppWrapperRequest:
    runtime = draw(st.integers(60, 4 * 3600))
    earliest = NOW + draw(st.integers(60, 3600))
    message = common_pb2.AppWrapper(
        id=draw(st.one_of(st.just(""), VALID_IDS)),
        namespace=draw(st.sampled_from(["", "caspian-jobs", "team-a"])),
        template=common_pb2.JobTemplate(
            image=draw(
                st.sampled_from(["busybox:1.36", "python:3.11-slim", "ghcr.io/org/app@sha256:" + "a" * 64])
            ),
            command=["sh", "-c", "true"],
            resources=common_pb2.Resources(
                cpu_millis=draw(st.integers(1, 16_000)), memory_bytes=draw(st.integers(1, 1 << 34))
            ),
        ),
    )
    message.template.expected_runtime.seconds = runtime
    message.earliest_start.seconds = earliest
    message.deadline.seconds = earliest + runtime + draw(st.integers(0, 86400))
    for name in draw(st.lists(st.sampled_from(sorted(MUTATIONS)), max_size=3)):
        MUTATIONS[name](message, draw)
    request_id = draw(st.one_of(st.just(""), VALID_IDS, NAMES))
    return hub_pb2.SubmitAppWrapperRequest(app_wrapper=message, request_id=request_id)


FLOATS = st.one_of(
    st.floats(0, 2000), st.sampled_from([math.nan, math.inf, -math.inf, -1.0, 1e308, -0.0, 5e-324])
)


def _job_mutation(change):
    """Apply `change(job, draw)` to one drawn job of the request."""

    def mutate(r, d):
        if r.jobs:
            change(r.jobs[d(st.integers(0, len(r.jobs) - 1))], d)

    return mutate


def _forecast_value(r, d):
    forecast = r.forecasts[d(st.integers(0, len(r.forecasts) - 1))]
    if forecast.gco2_per_kwh:
        forecast.gco2_per_kwh[d(st.integers(0, len(forecast.gco2_per_kwh) - 1))] = d(FLOATS)


def _reservation(r, d):
    r.reservations.add(
        cluster=d(st.sampled_from(["kr", "jp", "mars"])),
        start_slot=d(st.one_of(st.integers(0, 48), INT32)),
        end_slot=d(st.one_of(st.integers(0, 48), INT32)),
        resources=common_pb2.Resources(cpu_millis=d(st.one_of(st.integers(0, 8000), INT64))),
    )


def _set(path: str, values):
    *parents, leaf = path.split(".")

    def mutate(r, d):
        target = r
        for parent in parents:
            target = getattr(target, parent)
        setattr(target, leaf, d(values))

    return mutate


SOLVE_MUTATIONS = {
    "grid slots": _set("grid.slots", st.one_of(st.sampled_from([0, -1, 2017, 10**6]), INT32)),
    "grid slot length": _set("grid.slot.seconds", st.one_of(st.sampled_from([0, -900, 1]), INT64)),
    "grid start": _set("grid.start.seconds", INT64),
    "forecast value": _forecast_value,
    "forecast cluster": lambda r, d: setattr(r.forecasts[0], "cluster", d(NAMES)),
    "forecast too short": lambda r, d: (
        r.forecasts[1].gco2_per_kwh.pop() if r.forecasts[1].gco2_per_kwh else None
    ),
    "cluster capacity": lambda r, d: setattr(r.clusters[0].capacity, "cpu_millis", d(INT64)),
    "cluster gpus": lambda r, d: setattr(r.clusters[1].capacity, "gpus", d(INT32)),
    "cluster power": lambda r, d: setattr(r.clusters[0].power, "watts_per_core", d(FLOATS)),
    "cluster pue": lambda r, d: setattr(r.clusters[1].power, "pue", d(FLOATS)),
    "cluster name": lambda r, d: setattr(r.clusters[1], "name", d(NAMES)),
    "job id": _job_mutation(lambda j, d: setattr(j, "id", d(NAMES))),
    "job cpu": _job_mutation(lambda j, d: setattr(j.resources, "cpu_millis", d(INT64))),
    "job runtime": _job_mutation(lambda j, d: setattr(j.runtime, "seconds", d(INT64))),
    "job runtime nanos": _job_mutation(lambda j, d: setattr(j.runtime, "nanos", d(INT32))),
    "job earliest start": _job_mutation(lambda j, d: setattr(j.earliest_start, "seconds", d(TIMES))),
    "job deadline": _job_mutation(lambda j, d: setattr(j.deadline, "seconds", d(TIMES))),
    "job clusters": _job_mutation(
        lambda j, d: j.required_clusters.extend(
            d(st.lists(st.sampled_from(["kr", "jp", "mars"]), max_size=2))
        )
    ),
    "job priority": _job_mutation(lambda j, d: setattr(j, "priority", d(INT32))),
    "reservation": _reservation,
    "policy": _set("options.policy", st.one_of(st.integers(0, 7), INT32)),
    "solver": _set("options.solver", st.one_of(st.integers(0, 2), INT32)),
    "time limit": _set("options.time_limit.seconds", INT64),
    "migration cost": _set("options.migration_cost_gco2", FLOATS),
    "lateness": _set("options.lateness_gco2_per_slot", FLOATS),
    "preferred discount": _set("options.preferred_discount", FLOATS),
    "mip gap": _set("options.mip_gap", FLOATS),
}


@st.composite
def solve_requests(draw) -> optimizer_pb2.SolveRequest:
    """A small valid problem (any policy, up to six jobs), then none to three hostile changes."""
    slots = draw(st.integers(1, 48))
    request = solve_request(datetime.fromtimestamp(NOW, UTC), slots=slots)
    for i in range(draw(st.integers(0, 4))):
        job = request.jobs.add()
        job.CopyFrom(request.jobs[0])
        job.id = f"extra-{i}"
        job.resources.cpu_millis = draw(st.integers(100, 16_000))
        job.runtime.seconds = draw(st.integers(60, 900 * slots))
        job.preferred_clusters.extend(draw(st.lists(st.sampled_from(["kr", "jp"]), max_size=1)))
    request.options.policy = draw(st.integers(1, 7))
    request.options.time_limit.seconds = 2
    for name in draw(st.lists(st.sampled_from(sorted(SOLVE_MUTATIONS)), max_size=3)):
        SOLVE_MUTATIONS[name](request, draw)
    return request


def _fuzz_settings(examples: int):
    return settings(
        max_examples=examples,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


def serving(address: str) -> int:
    with grpc.insecure_channel(address) as channel:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5).status


@pytest.mark.scenario("fuzz: SubmitAppWrapper")
def test_fuzzed_submissions_never_break_the_hub(door_hub, scenario):
    examples = scale(800, 3000)
    codes: Counter[str] = Counter()
    unnamed: list[str] = []
    internal_before = metric(door_hub.proc.metrics_address, "api_requests_total", code="INTERNAL")
    with grpc.insecure_channel(door_hub.address) as channel:
        stub = hub_pb2_grpc.HubServiceStub(channel)

        @_fuzz_settings(examples)
        @given(app_wrappers())
        def submit(request):
            try:
                stub.SubmitAppWrapper(request, timeout=10)
                codes["OK"] += 1
            except grpc.RpcError as exc:
                codes[exc.code().name] += 1
                details = exc.details() or ""
                if exc.code() == grpc.StatusCode.INVALID_ARGUMENT and not details.startswith(FIELD_PREFIXES):
                    unnamed.append(details[:120])

        submit()
    internal = metric(door_hub.proc.metrics_address, "api_requests_total", code="INTERNAL") - internal_before
    scenario.lost, scenario.duplicated = None, None  # no data path here
    scenario.detail.update(
        messages=sum(codes.values()),
        by_status=dict(sorted(codes.items())),
        invalid_without_field=unnamed[:10],
        internal=int(internal),
    )
    assert set(codes) <= ALLOWED, codes
    assert internal == 0
    assert unnamed == []
    assert codes["INVALID_ARGUMENT"] and codes["OK"], codes  # the generator reaches both sides of the door
    assert door_hub.alive()
    assert serving(door_hub.address) == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.scenario("fuzz: Solve")
def test_fuzzed_solves_never_break_the_optimizer(optimizer_process, scenario):
    examples = scale(500, 2000)
    codes: Counter[str] = Counter()
    internal_before = metric(optimizer_process.metrics_address, "api_requests_total", code="INTERNAL")
    with grpc.insecure_channel(optimizer_process.address) as channel:
        stub = optimizer_pb2_grpc.OptimizerServiceStub(channel)
        try:
            stub.Solve(solve_request(datetime.now(UTC)), timeout=30)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                scenario.detail["skipped"] = "the optimizer does not implement Solve yet"
                pytest.skip("the optimizer does not implement Solve yet")

        @_fuzz_settings(examples)
        @given(solve_requests())
        def solve(request):
            try:
                stub.Solve(request, timeout=60)
                codes["OK"] += 1
            except grpc.RpcError as exc:
                codes[exc.code().name] += 1

        solve()
    internal = (
        metric(optimizer_process.metrics_address, "api_requests_total", code="INTERNAL") - internal_before
    )
    scenario.lost, scenario.duplicated = None, None  # no data path here
    scenario.detail.update(
        messages=sum(codes.values()), by_status=dict(sorted(codes.items())), internal=int(internal)
    )
    assert set(codes) <= ALLOWED, codes
    assert internal == 0
    assert optimizer_process.proc.poll() is None
    assert serving(optimizer_process.address) == health_pb2.HealthCheckResponse.SERVING
