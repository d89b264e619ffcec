"""The dispatcher over real gRPC against three simulated spokes, through the official kubernetes client."""

import asyncio
import time
from datetime import timedelta

import grpc
import httpx
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from caspian.v1 import dispatcher_pb2
from services.common.timeconv import from_timestamp
from services.dispatcher.manifests import job_name_for
from tests.dispatcher.conftest import START, EventLog
from tests.dispatcher.support import GIB, app_wrapper, batch_api, dispatch_request

NS = "caspian-jobs"


def jobs_on(spoke):
    return spoke.store.list("jobs", NS)


def from_running(phases: list[str]) -> list[str]:
    """The phases from the first RUNNING on; before it a Job may be seen PENDING, depending on which of the
    watch event and the create response arrives first."""
    assert set(phases[: phases.index("JOB_PHASE_RUNNING")]) <= {"JOB_PHASE_PENDING"}, phases
    return phases[phases.index("JOB_PHASE_RUNNING") :]


async def test_dispatched_job_exists_with_the_right_spec(dispatcher, spokes):
    aw = app_wrapper(
        "train-1",
        cpu_millis=1500,
        memory_bytes=2 * GIB,
        gpus=1,
        runtime_s=900,
        deadline=START + timedelta(hours=2),
        labels={"team": "vision"},
    )
    response = await dispatcher.stub.DispatchJob(dispatch_request(aw, "carbon-kr"), timeout=10)
    assert response.created
    assert (response.job_name, response.namespace, response.cluster) == (
        job_name_for("train-1"),
        NS,
        "carbon-kr",
    )

    job = await asyncio.to_thread(
        batch_api(spokes["carbon-kr"].url).read_namespaced_job, response.job_name, NS
    )
    assert job.metadata.labels["app.kubernetes.io/managed-by"] == "caspian"
    assert job.metadata.labels["caspian.io/appwrapper-id"] == "train-1"
    assert job.metadata.labels["team"] == "vision"
    assert job.metadata.annotations["caspian.io/expected-runtime-seconds"] == "900"
    assert job.spec.backoff_limit == 2
    assert job.spec.ttl_seconds_after_finished == 86_400
    assert job.spec.active_deadline_seconds == 7200
    pod = job.spec.template.spec
    assert pod.restart_policy == "Never"
    (container,) = pod.containers
    assert container.image == "busybox:1.36"
    assert container.command == ["sh", "-c"] and container.args == ["echo hello"]
    assert [(e.name, e.value) for e in container.env] == [("MODE", "batch")]
    expected = {"cpu": "1500m", "memory": str(2 * GIB), "nvidia.com/gpu": "1"}
    assert container.resources.requests == expected
    assert container.resources.limits == expected
    assert jobs_on(spokes["carbon-jp"]) == [] and jobs_on(spokes["carbon-cn"]) == []
    assert dispatcher.metric("caspian_jobs_created_total", {"cluster": "carbon-kr"}) == 1


async def test_redispatch_is_idempotent(dispatcher, spokes):
    request = dispatch_request(app_wrapper("again-1"), "carbon-jp")
    first = await dispatcher.stub.DispatchJob(request, timeout=10)
    second = await dispatcher.stub.DispatchJob(request, timeout=10)
    assert first.created and not second.created
    assert first.job_name == second.job_name
    assert [j["metadata"]["name"] for j in jobs_on(spokes["carbon-jp"])] == [first.job_name]
    assert dispatcher.metric("caspian_jobs_created_total", {"cluster": "carbon-jp"}) == 1


async def test_name_taken_by_another_appwrapper_is_already_exists(dispatcher, spokes):
    name = job_name_for("owned-1")
    foreign = {
        "metadata": {"name": name, "labels": {"caspian.io/appwrapper-id": "someone-else"}},
        "spec": {
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "x", "image": "x"}]}}
        },
    }
    await asyncio.to_thread(batch_api(spokes["carbon-cn"].url).create_namespaced_job, NS, foreign)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await dispatcher.stub.DispatchJob(dispatch_request(app_wrapper("owned-1"), "carbon-cn"), timeout=10)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "someone-else" in err.value.details()


async def test_hub_sees_running_then_succeeded_then_cleanup(dispatcher, events, clock):
    await dispatcher.stub.DispatchJob(
        dispatch_request(app_wrapper("run-1", runtime_s=600), "carbon-kr"), timeout=10
    )
    await events.wait_for(lambda e: "JOB_PHASE_RUNNING" in e.phases("run-1"))
    assert "JOB_PHASE_SUCCEEDED" not in events.phases("run-1")
    clock.advance(600)
    await events.wait_for(lambda e: "JOB_PHASE_SUCCEEDED" in e.phases("run-1"))
    assert from_running(events.phases("run-1")) == ["JOB_PHASE_RUNNING", "JOB_PHASE_SUCCEEDED"]
    done = events.jobs("run-1")[-1]
    assert from_timestamp(done.start_time) == START
    assert from_timestamp(done.completion_time) == START + timedelta(seconds=600)
    # ttlSecondsAfterFinished removes the finished Job; the hub is told it is gone.
    clock.advance(86_400)
    await events.wait_for(lambda e: "JOB_PHASE_DELETED" in e.phases("run-1"))


async def test_failed_job_is_reported_with_its_reason(dispatcher, events, clock):
    aw = app_wrapper("fail-1", labels={"sim.caspian.io/fail": "true"})
    await dispatcher.stub.DispatchJob(dispatch_request(aw, "carbon-jp"), timeout=10)
    clock.advance(120)  # past the pod retries (10 s, then 20 s apart)
    failed = await events.wait_for(
        lambda e: [j for j in e.jobs("fail-1") if j.phase == dispatcher_pb2.JOB_PHASE_FAILED]
    )
    assert failed[0].reason.startswith("BackoffLimitExceeded")
    assert failed[0].HasField("completion_time")
    assert "JOB_PHASE_SUCCEEDED" not in events.phases("fail-1")


async def test_cancel_deletes_the_job_and_its_pods(dispatcher, spokes, events):
    spoke = spokes["carbon-cn"]
    await dispatcher.stub.DispatchJob(dispatch_request(app_wrapper("cancel-1"), "carbon-cn"), timeout=10)
    await events.wait_for(lambda e: "JOB_PHASE_RUNNING" in e.phases("cancel-1"))
    assert len(spoke.store.list("pods", NS)) == 1
    request = dispatcher_pb2.CancelJobRequest(app_wrapper_id="cancel-1", cluster="carbon-cn")
    assert (await dispatcher.stub.CancelJob(request, timeout=10)).deleted
    assert jobs_on(spoke) == []
    assert spoke.store.list("pods", NS) == []  # propagation Background took the pod too
    await events.wait_for(lambda e: "JOB_PHASE_DELETED" in e.phases("cancel-1"))
    assert not (await dispatcher.stub.CancelJob(request, timeout=10)).deleted


async def test_stopped_spoke_goes_not_ready_and_its_jobs_unknown_until_it_returns(
    dispatcher, spokes, events, clock
):
    jp = spokes["carbon-jp"]
    await dispatcher.stub.DispatchJob(
        dispatch_request(app_wrapper("runs-1", runtime_s=600), "carbon-jp"), timeout=10
    )
    # 20 cores fit no 15.8-core worker: this Job waits, not started.
    waiting = app_wrapper("waits-1", cpu_millis=20_000)
    await dispatcher.stub.DispatchJob(dispatch_request(waiting, "carbon-jp"), timeout=10)
    await events.wait_for(lambda e: "JOB_PHASE_RUNNING" in e.phases("runs-1") and e.phases("waits-1"))
    assert events.phases("waits-1") == ["JOB_PHASE_PENDING"]

    async with httpx.AsyncClient(base_url=jp.url, timeout=5) as http:
        (await http.post("/_sim/outage", json={"mode": "hang"})).raise_for_status()
        down = await events.wait_for(lambda e: [c for c in e.clusters("carbon-jp") if not c.ready])
        assert "not answered" in down[0].reason
        await events.wait_for(
            lambda e: (
                e.phases("runs-1")[-1:] == ["JOB_PHASE_UNKNOWN"]
                and e.phases("waits-1")[-1:] == ["JOB_PHASE_UNKNOWN"]
            )
        )
        # What the hub needs to re-plan: the waiting Job was last seen PENDING, the running one RUNNING.
        assert "last seen PENDING" in events.jobs("waits-1")[-1].reason
        assert "last seen RUNNING" in events.jobs("runs-1")[-1].reason
        probe = await dispatcher.stub.ProbeClusters(
            dispatcher_pb2.ProbeClustersRequest(clusters=["carbon-jp"]), timeout=5
        )
        assert not probe.clusters[0].ready and probe.clusters[0].reason

        # One dead spoke does not slow the others; dispatching to it fails fast and says so.
        started = time.monotonic()
        other = await dispatcher.stub.DispatchJob(
            dispatch_request(app_wrapper("elsewhere-1"), "carbon-kr"), timeout=10
        )
        assert other.created and time.monotonic() - started < 1.0
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await dispatcher.stub.DispatchJob(
                dispatch_request(app_wrapper("stuck-1"), "carbon-jp"), timeout=10
            )
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE

        clock.advance(600)  # the running Job finishes while nobody can see it
        (await http.delete("/_sim/outage")).raise_for_status()

    await events.wait_for(lambda e: e.clusters("carbon-jp")[-1].ready)
    await events.wait_for(lambda e: e.phases("runs-1")[-1] == "JOB_PHASE_SUCCEEDED")
    await events.wait_for(lambda e: e.phases("waits-1")[-1] == "JOB_PHASE_PENDING")
    assert from_running(events.phases("runs-1")) == [
        "JOB_PHASE_RUNNING",
        "JOB_PHASE_UNKNOWN",
        "JOB_PHASE_SUCCEEDED",
    ]
    assert dispatcher.metric("caspian_spoke_ready", {"cluster": "carbon-jp"}) == 1
    names = {j["metadata"]["name"] for j in jobs_on(jp)}
    assert {job_name_for("runs-1"), job_name_for("waits-1")} <= names


async def test_watch_lists_again_after_410_gone(dispatcher, spokes, events, clock):
    cn = spokes["carbon-cn"]
    await dispatcher.stub.DispatchJob(
        dispatch_request(app_wrapper("gone-1", runtime_s=300), "carbon-cn"), timeout=10
    )
    await events.wait_for(lambda e: "JOB_PHASE_RUNNING" in e.phases("gone-1"))
    watcher = dispatcher.domain.watchers[("carbon-cn", NS)]
    before = watcher.relists
    async with httpx.AsyncClient(base_url=cn.url, timeout=5) as http:
        assert (await http.post("/_sim/expire-watches")).json()["expired"] >= 1
    deadline = time.monotonic() + 10
    while watcher.relists == before:
        assert time.monotonic() < deadline, "the watcher did not list again after 410"
        await asyncio.sleep(0.02)
    # Status still flows, now through the new watch.
    clock.advance(300)
    await events.wait_for(lambda e: "JOB_PHASE_SUCCEEDED" in e.phases("gone-1"))


async def test_create_is_retried_on_5xx(dispatcher, spokes):
    kr = spokes["carbon-kr"]
    async with httpx.AsyncClient(base_url=kr.url, timeout=5) as http:
        fault = {"status": 503, "count": 2, "verbs": ["create"], "resource": "jobs"}
        (await http.post("/_sim/faults", json=fault)).raise_for_status()
    response = await dispatcher.stub.DispatchJob(
        dispatch_request(app_wrapper("flaky-1"), "carbon-kr"), timeout=10
    )
    assert response.created
    assert len(jobs_on(kr)) == 1
    assert (
        dispatcher.metric("caspian_spoke_requests_total", {"cluster": "carbon-kr", "outcome": "server_error"})
        == 2
    )


async def test_create_that_timed_out_but_landed_is_found_by_its_label(dispatcher, spokes):
    kr = spokes["carbon-kr"]
    async with httpx.AsyncClient(base_url=kr.url, timeout=5) as http:
        # The spoke stores the Job, then answers too late: the retry meets 409 and adopts the Job.
        slow = {"status": 0, "count": 1, "verbs": ["create"], "delay_seconds": 1.5, "after_commit": True}
        (await http.post("/_sim/faults", json=slow)).raise_for_status()
    response = await dispatcher.stub.DispatchJob(
        dispatch_request(app_wrapper("late-1"), "carbon-kr"), timeout=10
    )
    assert response.job_name == job_name_for("late-1")
    assert len(jobs_on(kr)) == 1
    assert (
        dispatcher.metric("caspian_spoke_requests_total", {"cluster": "carbon-kr", "outcome": "timeout"}) >= 1
    )


async def test_probe_reports_free_capacity_of_ready_nodes(dispatcher, spokes):
    stub = dispatcher.stub
    probes = {
        p.cluster: p
        for p in (await stub.ProbeClusters(dispatcher_pb2.ProbeClustersRequest(), timeout=10)).clusters
    }
    assert set(probes) == {"carbon-kr", "carbon-jp", "carbon-cn"}
    kr = probes["carbon-kr"]
    assert kr.ready and kr.ready_nodes == 2  # the tainted control-plane does not count
    assert (kr.allocatable.cpu_millis, kr.allocatable.memory_bytes, kr.allocatable.gpus) == (
        31_600,
        124 * GIB,
        4,
    )
    assert kr.free == kr.allocatable
    assert probes["carbon-cn"].allocatable.cpu_millis == 63_600

    for i in range(2):
        aw = app_wrapper(f"cap-{i}", cpu_millis=2000, memory_bytes=4 * GIB, gpus=1)
        await stub.DispatchJob(dispatch_request(aw, "carbon-kr"), timeout=10)
    # A Job still waiting for room holds its place too.
    await stub.DispatchJob(
        dispatch_request(app_wrapper("cap-big", cpu_millis=20_000), "carbon-kr"), timeout=10
    )
    kr = (
        await stub.ProbeClusters(dispatcher_pb2.ProbeClustersRequest(clusters=["carbon-kr"]), timeout=10)
    ).clusters[0]
    assert kr.free.cpu_millis == 31_600 - 4000 - 20_000
    assert kr.free.memory_bytes == 124 * GIB - 8 * GIB - GIB
    assert kr.free.gpus == 2

    async with httpx.AsyncClient(base_url=spokes["carbon-kr"].url, timeout=5) as http:
        (await http.post("/_sim/nodes/carbon-kr-worker2/ready", json={"ready": False})).raise_for_status()
    kr = (
        await stub.ProbeClusters(dispatcher_pb2.ProbeClustersRequest(clusters=["carbon-kr"]), timeout=10)
    ).clusters[0]
    assert kr.ready_nodes == 1 and kr.allocatable.cpu_millis == 15_800


async def test_late_subscriber_gets_snapshot_then_bookmark_then_live(dispatcher, clock):
    for aw_id, cluster in (("snap-1", "carbon-kr"), ("snap-2", "carbon-cn")):
        await dispatcher.stub.DispatchJob(
            dispatch_request(app_wrapper(aw_id, runtime_s=60), cluster), timeout=10
        )
    log = EventLog(dispatcher.stub)
    try:
        await log.wait_for(lambda e: e.bookmarked())
        mark = next(i for i, item in enumerate(log.items) if item.HasField("bookmark"))
        snapshot = log.items[:mark]
        assert {(i.job.app_wrapper_id, i.job.phase) for i in snapshot if i.HasField("job")} == {
            ("snap-1", dispatcher_pb2.JOB_PHASE_RUNNING),
            ("snap-2", dispatcher_pb2.JOB_PHASE_RUNNING),
        }
        assert {(i.cluster.cluster, i.cluster.ready) for i in snapshot if i.HasField("cluster")} == {
            ("carbon-kr", True),
            ("carbon-jp", True),
            ("carbon-cn", True),
        }
        clock.advance(60)
        await log.wait_for(
            lambda e: (
                "JOB_PHASE_SUCCEEDED" in e.phases("snap-1") and "JOB_PHASE_SUCCEEDED" in e.phases("snap-2")
            )
        )
    finally:
        await log.close()


async def test_dispatch_latency_is_measured_from_gate_open(dispatcher, clock):
    gate = clock.now() - timedelta(milliseconds=50)
    await dispatcher.stub.DispatchJob(
        dispatch_request(app_wrapper("lat-1"), "carbon-kr", gate=gate), timeout=10
    )
    assert dispatcher.metric("caspian_dispatch_latency_seconds_count") == 1
    assert dispatcher.metric("caspian_dispatch_latency_seconds_sum") == pytest.approx(0.05)


async def test_list_spokes(dispatcher, spokes):
    listed = (await dispatcher.stub.ListSpokes(dispatcher_pb2.ListSpokesRequest(), timeout=5)).spokes
    assert {(s.cluster, s.kube_context, s.server) for s in listed} == {
        (name, name, spoke.url) for name, spoke in spokes.items()
    }


@pytest.mark.parametrize(
    "change, cluster, code, field",
    [
        (lambda aw: aw.ClearField("id"), "carbon-kr", grpc.StatusCode.INVALID_ARGUMENT, "app_wrapper.id"),
        (
            lambda aw: aw.template.ClearField("image"),
            "carbon-kr",
            grpc.StatusCode.INVALID_ARGUMENT,
            "app_wrapper.template.image",
        ),
        (
            lambda aw: aw.labels.update({"bad key!": "x"}),
            "carbon-kr",
            grpc.StatusCode.INVALID_ARGUMENT,
            "app_wrapper.labels[bad key!]",
        ),
        (
            lambda aw: aw.template.resources.__setattr__("cpu_millis", -1),
            "carbon-kr",
            grpc.StatusCode.INVALID_ARGUMENT,
            "app_wrapper.template.resources.cpu_millis",
        ),
        (
            lambda aw: aw.deadline.CopyFrom(aw.deadline.__class__(seconds=1)),
            "carbon-kr",
            grpc.StatusCode.FAILED_PRECONDITION,
            "app_wrapper.deadline",
        ),
        (lambda aw: None, "carbon-xx", grpc.StatusCode.NOT_FOUND, "cluster"),
        (lambda aw: None, "", grpc.StatusCode.INVALID_ARGUMENT, "cluster"),
    ],
)
async def test_bad_requests_name_the_field(dispatcher, change, cluster, code, field):
    aw = app_wrapper("bad-1")
    change(aw)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await dispatcher.stub.DispatchJob(dispatch_request(aw, cluster), timeout=10)
    assert err.value.code() == code
    assert err.value.details().startswith(f"{field}:")


async def test_missing_namespace_on_the_spoke_is_failed_precondition(dispatcher):
    request = dispatch_request(app_wrapper("ns-1"), "carbon-kr", namespace="no-such-namespace")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await dispatcher.stub.DispatchJob(request, timeout=10)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert err.value.details().startswith("namespace:")


@pytest.mark.parametrize(
    ("spoil", "field"),
    [
        (
            lambda r: r.app_wrapper.template.expected_runtime.MergeFrom(
                Duration(seconds=10, nanos=-999_999_999)
            ),
            "app_wrapper.template.expected_runtime.nanos",
        ),
        (lambda r: r.app_wrapper.deadline.MergeFrom(Timestamp(seconds=10**12)), "app_wrapper.deadline"),
        (lambda r: r.gate_opened_at.MergeFrom(Timestamp(seconds=1, nanos=-1)), "gate_opened_at.nanos"),
    ],
)
async def test_times_protobuf_forbids_are_refused_at_the_door(dispatcher, spoil, field):
    request = dispatch_request(app_wrapper("bad-time", deadline=START + timedelta(hours=2)), "carbon-kr")
    spoil(request)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await dispatcher.stub.DispatchJob(request, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith(f"{field}:"), err.value.details()
