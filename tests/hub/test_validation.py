"""Door checks over real gRPC: each bad request answers INVALID_ARGUMENT naming the field path."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from caspian.v1 import common_pb2, hub_pb2
from services.common.timeconv import to_duration, to_timestamp
from tests.hub.conftest import START, app_wrapper, cluster_info


def _set(path: str, value):
    def apply(aw):
        *parents, leaf = path.split(".")
        target = aw
        for name in parents:
            target = getattr(target, name)
        if hasattr(value, "CopyFrom"):
            getattr(target, leaf).CopyFrom(value)
        else:
            setattr(target, leaf, value)

    return apply


def _extend(path: str, values):
    def apply(aw):
        *parents, leaf = path.split(".")
        target = aw
        for name in parents:
            target = getattr(target, name)
        getattr(target, leaf).extend(values)

    return apply


def _env(*pairs):
    return _extend("template.env", [common_pb2.EnvVar(name=n, value=v) for n, v in pairs])


def _labels(**labels):
    return lambda aw: aw.labels.update(labels)


YEAR_9999 = to_timestamp(datetime(9999, 12, 31, tzinfo=UTC))

BAD_APP_WRAPPERS = [
    ("upper-case id", _set("id", "Train_1"), "app_wrapper.id"),
    ("control character in id", _set("id", "job\x07one"), "app_wrapper.id"),
    ("id longer than 63", _set("id", "a" * 64), "app_wrapper.id"),
    ("name not a subdomain", _set("name", "My Job"), "app_wrapper.name"),
    ("tenant with a newline", _set("tenant", "team\na"), "app_wrapper.tenant"),
    ("namespace not allowed", _set("namespace", "prod"), "app_wrapper.namespace"),
    ("system namespace", _set("namespace", "kube-system"), "app_wrapper.namespace"),
    ("no image", _set("template.image", ""), "app_wrapper.template.image"),
    (
        "shell metacharacters in image",
        _set("template.image", "busybox;rm -rf /"),
        "app_wrapper.template.image",
    ),
    ("command substitution in image", _set("template.image", "busybox:$(id)"), "app_wrapper.template.image"),
    ("upper-case image path", _set("template.image", "Library/Busybox"), "app_wrapper.template.image"),
    ("zero cpu", _set("template.resources.cpu_millis", 0), "app_wrapper.template.resources.cpu_millis"),
    (
        "negative cpu",
        _set("template.resources.cpu_millis", -500),
        "app_wrapper.template.resources.cpu_millis",
    ),
    (
        "zero memory",
        _set("template.resources.memory_bytes", 0),
        "app_wrapper.template.resources.memory_bytes",
    ),
    ("negative gpus", _set("template.resources.gpus", -1), "app_wrapper.template.resources.gpus"),
    (
        "fits no cluster",
        _set("template.resources.cpu_millis", 500_000),
        "app_wrapper.template.resources.cpu_millis",
    ),
    (
        "zero runtime",
        _set("template.expected_runtime", to_duration(0)),
        "app_wrapper.template.expected_runtime",
    ),
    (
        "negative runtime",
        _set("template.expected_runtime", to_duration(-60)),
        "app_wrapper.template.expected_runtime",
    ),
    (
        "one-nanosecond runtime (the optimizer's job rule)",
        _set("template.expected_runtime", to_duration(0).__class__(seconds=0, nanos=1)),
        "app_wrapper.template.expected_runtime",
    ),
    (
        "runtime beyond the horizon",
        _set("template.expected_runtime", to_duration(25 * 3600)),
        "app_wrapper.template.expected_runtime",
    ),
    ("deadline before start + runtime", lambda aw: _deadline_in(aw, 1800), "app_wrapper.deadline"),
    ("deadline in year 9999", _set("deadline", YEAR_9999), "app_wrapper.deadline"),
    ("earliest start in year 9999", _set("earliest_start", YEAR_9999), "app_wrapper.earliest_start"),
    ("bad deadline nanos", lambda aw: setattr(aw.deadline, "nanos", -1), "app_wrapper.deadline.nanos"),
    ("unknown required cluster", _extend("required_clusters", ["mars"]), "app_wrapper.required_clusters[0]"),
    (
        "unknown preferred cluster",
        _extend("preferred_clusters", ["mars"]),
        "app_wrapper.preferred_clusters[0]",
    ),
    (
        "unknown excluded cluster",
        _extend("excluded_clusters", ["carbon-kr", "mars"]),
        "app_wrapper.excluded_clusters[1]",
    ),
    (
        "affinities exclude every cluster",
        _extend("excluded_clusters", ["carbon-kr", "carbon-jp", "carbon-cn"]),
        "app_wrapper.excluded_clusters",
    ),
    (
        "too many env vars",
        _env(*[(f"V{i}", "x") for i in range(65)]),
        "app_wrapper.template.env",
    ),
    ("oversized env value", _env(("BIG", "x" * 40000)), "app_wrapper.template.env[0].value"),
    ("bad env name", _env(("1=X", "y")), "app_wrapper.template.env[0].name"),
    ("duplicate env name", _env(("A", "1"), ("A", "2")), "app_wrapper.template.env[1].name"),
    ("bad label key", _labels(**{"bad key": "v"}), "app_wrapper.labels"),
    ("reserved label", _labels(**{"caspian.io/appwrapper-id": "x"}), "app_wrapper.labels"),
    ("bad label value", _labels(team="a b"), "app_wrapper.labels"),
    ("negative priority", _set("priority", -1), "app_wrapper.priority"),
    (
        "negative resume overhead",
        _set("interruptible.resume_overhead", to_duration(-60)),
        "app_wrapper.interruptible.resume_overhead",
    ),
    (
        "resume overhead as long as the run",
        _set("interruptible.resume_overhead", to_duration(3600)),
        "app_wrapper.interruptible.resume_overhead",
    ),
    (
        "negative min segment",
        _set("interruptible.min_segment", to_duration(-1)),
        "app_wrapper.interruptible.min_segment",
    ),
    ("negative max pauses", _set("interruptible.max_pauses", -1), "app_wrapper.interruptible.max_pauses"),
    ("request too large", _extend("template.args", ["x" * 30000] * 3), "app_wrapper"),
]


def _deadline_in(aw, seconds):
    aw.deadline.CopyFrom(to_timestamp(START + timedelta(seconds=seconds)))


def _names(details: str, field: str) -> bool:
    """The status message starts with exactly this field path (or an element of it)."""
    return details.startswith(field) and details[len(field)] in ":["


@pytest.fixture
async def door(make_harness):
    harness = await make_harness(allowed_namespaces=("default", "batch"))
    await harness.register_clusters()
    return harness


@pytest.mark.parametrize("case, mutate, field", BAD_APP_WRAPPERS, ids=[c[0] for c in BAD_APP_WRAPPERS])
async def test_bad_app_wrapper_is_invalid_argument_naming_the_field(door, case, mutate, field):
    aw = app_wrapper(door.clock, id="door-check")
    mutate(aw)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await door.stub.SubmitAppWrapper(hub_pb2.SubmitAppWrapperRequest(app_wrapper=aw), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert _names(err.value.details(), field), (field, err.value.details())
    listed = await door.stub.ListAppWrappers(hub_pb2.ListAppWrappersRequest(), timeout=10)
    assert listed.total_size == 0


async def test_bad_request_id_names_the_field(door):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await door.stub.SubmitAppWrapper(
            hub_pb2.SubmitAppWrapperRequest(app_wrapper=app_wrapper(door.clock), request_id="has space"),
            timeout=10,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("request_id")


async def test_missing_app_wrapper_names_the_field(door):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await door.stub.SubmitAppWrapper(hub_pb2.SubmitAppWrapperRequest(), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("app_wrapper")


async def test_good_variants_pass(door):
    aw = app_wrapper(door.clock, id="fine", namespace="batch", priority=10)
    aw.template.image = "registry.example.com:5000/team/train@sha256:" + "a" * 64
    aw.labels["app.kubernetes.io/name"] = "train"
    aw.labels["sim.caspian.io/fail"] = "true"
    aw.template.env.add(name="MODE", value="fast")
    aw.template.args.extend(["--epochs", "3; echo this is an argument, not a shell"])
    response = await door.stub.SubmitAppWrapper(hub_pb2.SubmitAppWrapperRequest(app_wrapper=aw), timeout=10)
    assert response.created
    pausable = app_wrapper(door.clock, id="pausable")
    pausable.interruptible.resume_overhead.CopyFrom(to_duration(300))
    pausable.interruptible.max_pauses = 0
    response = await door.stub.SubmitAppWrapper(
        hub_pb2.SubmitAppWrapperRequest(app_wrapper=pausable), timeout=10
    )
    assert response.created and response.app_wrapper.interruptible.resume_overhead.seconds == 300


def _power(**fields):
    return lambda c: c.power.MergeFrom(common_pb2.PowerModel(**fields))


BAD_CLUSTERS = [
    ("upper-case name", lambda c: setattr(c, "name", "Carbon_KR"), "cluster.name"),
    ("zone with a space", lambda c: setattr(c, "zone", "K R"), "cluster.zone"),
    ("no zone", lambda c: setattr(c, "zone", ""), "cluster.zone"),
    ("zero capacity", lambda c: setattr(c.capacity, "cpu_millis", 0), "cluster.capacity.cpu_millis"),
    ("negative memory", lambda c: setattr(c.capacity, "memory_bytes", -1), "cluster.capacity.memory_bytes"),
    ("NaN watts", _power(watts_per_core=math.nan), "cluster.power.watts_per_core"),
    ("negative watts", _power(watts_per_gpu=-3.0), "cluster.power.watts_per_gpu"),
    ("infinite watts", _power(idle_watts=math.inf), "cluster.power.idle_watts"),
    ("PUE below one", _power(pue=0.5), "cluster.power.pue"),
    ("peak below idle", _power(idle_watts=200, peak_watts=100), "cluster.power.peak_watts"),
    ("bad namespace", lambda c: setattr(c, "job_namespace", "Jobs"), "cluster.job_namespace"),
]


@pytest.mark.parametrize("case, mutate, field", BAD_CLUSTERS, ids=[c[0] for c in BAD_CLUSTERS])
async def test_bad_cluster_is_invalid_argument_naming_the_field(harness, case, mutate, field):
    info = cluster_info("carbon-kr", "KR")
    mutate(info)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await harness.stub.RegisterCluster(hub_pb2.RegisterClusterRequest(cluster=info), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert _names(err.value.details(), field), (field, err.value.details())


async def test_bad_list_and_watch_arguments(harness):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await harness.stub.ListAppWrappers(hub_pb2.ListAppWrappersRequest(page_token="garbage!"), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and err.value.details().startswith(
        "page_token"
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await harness.stub.ListAppWrappers(hub_pb2.ListAppWrappersRequest(phases=[99]), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and err.value.details().startswith(
        "phases[0]"
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in harness.stub.WatchAppWrappers(
            hub_pb2.WatchAppWrappersRequest(since_revision=-1), timeout=10
        ):
            pass
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


# -- what a new user reads (issue: errors a new user meets) ----------------------------------------------------


async def _refusal(harness, aw) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await harness.stub.SubmitAppWrapper(hub_pb2.SubmitAppWrapperRequest(app_wrapper=aw), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    return err.value.details()


async def test_a_deadline_in_the_past_says_so_and_gives_the_hubs_time(door):
    aw = app_wrapper(door.clock)
    aw.deadline.CopyFrom(to_timestamp(START - timedelta(hours=2)))
    details = await _refusal(door, aw)
    assert details.startswith("app_wrapper.deadline: 2023-05-31T22:00:00Z is in the past"), details
    assert "the hub's time is 2023-06-01T00:00:00Z" in details


async def test_a_deadline_too_far_ahead_says_how_far_and_gives_the_hubs_time(door):
    aw = app_wrapper(door.clock)
    aw.deadline.CopyFrom(to_timestamp(START + timedelta(days=31)))
    details = await _refusal(door, aw)
    assert "is more than 30 days ahead" in details and "the hub's time is 2023-06-01T00:00:00Z" in details


async def test_a_tight_deadline_gives_the_earliest_acceptable_one(door):
    aw = app_wrapper(door.clock, runtime=3600)
    aw.deadline.CopyFrom(to_timestamp(START + timedelta(minutes=30)))
    details = await _refusal(door, aw)
    assert "2023-06-01T01:00:00Z or later" in details and "the hub's time is" in details


async def test_a_gpu_job_on_a_cluster_without_gpus_names_the_cluster(door):
    aw = app_wrapper(door.clock)
    aw.template.resources.gpus = 1
    aw.required_clusters.append("carbon-jp")
    details = await _refusal(door, aw)
    assert details == "app_wrapper.template.resources.gpus: gpus=1, but carbon-jp has no GPUs"


async def test_too_much_cpu_names_the_most_any_allowed_cluster_offers(door):
    aw = app_wrapper(door.clock, cpu_millis=500_000)
    details = await _refusal(door, aw)
    assert details.startswith("app_wrapper.template.resources.cpu_millis: cpu_millis=500000 is more than")
    assert "at most 16000 on carbon-" in details


async def test_with_no_cluster_registered_the_message_says_how_to_register_one(make_harness):
    harness = await make_harness()
    details = await _refusal(harness, app_wrapper(harness.clock))
    assert "caspianctl clusters register" in details
