"""The spoke simulator through the official kubernetes client: every object it returns must deserialise into the
client's strict models, and the API semantics (409, 404, 410, selectors, propagation, TTL) must match a real
API server's."""

import asyncio
import threading
from datetime import timedelta

import httpx
import pytest
from kubernetes import client as k8s
from kubernetes import watch

from clusters.simulator.server import SpokeSimulator
from tests.dispatcher.conftest import START
from tests.dispatcher.support import batch_api, core_api

NS = "caspian-jobs"
# A real-time bound on a watch that replays history: a test ends it once it has what it needs, so a
# generous bound costs nothing and a loaded machine cannot cut the replay short.
STREAM_TIMEOUT_S = 30


def job_body(
    name: str, *, runtime: int = 60, cpu: str = "1", labels=None, annotations=None, **spec
) -> k8s.V1Job:
    return k8s.V1Job.from_dict(
        {
            "metadata": {
                "name": name,
                "labels": {"app.kubernetes.io/managed-by": "caspian", **(labels or {})},
                "annotations": {"caspian.io/expected-runtime-seconds": str(runtime), **(annotations or {})},
            },
            "spec": {
                **spec,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [
                            {
                                "name": "main",
                                "image": "busybox",
                                "resources": {"requests": {"cpu": cpu}, "limits": {"cpu": cpu}},
                            }
                        ],
                    }
                },
            },
        }
    )


@pytest.fixture
async def spoke(clock):
    sim = SpokeSimulator("carbon-kr", clock, bookmark_seconds=0.2)
    await sim.start()
    yield sim
    await sim.stop()


def call(fn, *args, **kwargs):
    return asyncio.to_thread(fn, *args, **kwargs)


async def test_discovery_version_and_nodes(spoke):
    api_client = k8s.ApiClient(k8s.Configuration(host=spoke.url))
    assert (await call(k8s.VersionApi(api_client).get_code)).git_version.startswith("v1.")
    groups = await call(k8s.ApisApi(api_client).get_api_versions)
    assert [g.name for g in groups.groups] == ["batch"]
    batch = await call(k8s.BatchV1Api(api_client).get_api_resources)
    assert "jobs" in {r.name for r in batch.resources}
    nodes = (await call(k8s.CoreV1Api(api_client).list_node)).items
    assert [n.metadata.name for n in nodes] == [
        "carbon-kr-control-plane",
        "carbon-kr-worker",
        "carbon-kr-worker2",
    ]
    control = nodes[0]
    assert control.spec.taints[0].key == "node-role.kubernetes.io/control-plane"
    assert nodes[1].status.allocatable == {
        "pods": "110",
        "cpu": "15800m",
        "memory": "62Gi",
        "nvidia.com/gpu": "2",
    }
    assert all(c.status == "True" for n in nodes for c in n.status.conditions if c.type == "Ready")


async def test_job_runs_for_its_runtime_on_the_clock_then_completes(spoke, clock):
    api = batch_api(spoke.url)
    created = await call(api.create_namespaced_job, NS, job_body("short", runtime=90))
    assert created.status.active == 1 and created.status.ready == 1
    assert created.status.start_time == START
    assert created.spec.selector.match_labels["batch.kubernetes.io/controller-uid"] == created.metadata.uid
    pods = (await call(core_api(spoke.url).list_namespaced_pod, NS, label_selector="job-name=short")).items
    assert (
        len(pods) == 1
        and pods[0].status.phase == "Running"
        and pods[0].spec.node_name.startswith("carbon-kr-worker")
    )

    clock.advance(89)
    await asyncio.sleep(0.05)
    assert not (await call(api.read_namespaced_job, "short", NS)).status.conditions
    clock.advance(1)
    job = await _until(lambda: call(api.read_namespaced_job, "short", NS), lambda j: j.status.conditions)
    assert {c.type for c in job.status.conditions} == {"SuccessCriteriaMet", "Complete"}
    assert job.status.succeeded == 1 and job.status.active == 0
    assert job.status.completion_time == START + timedelta(seconds=90)
    pod = (await call(core_api(spoke.url).list_namespaced_pod, NS)).items[0]
    assert pod.status.phase == "Succeeded"
    assert pod.status.container_statuses[0].state.terminated.exit_code == 0


async def test_conflict_not_found_and_label_selectors(spoke):
    api = batch_api(spoke.url)
    await call(api.create_namespaced_job, NS, job_body("one", labels={"tier": "a"}))
    await call(api.create_namespaced_job, NS, job_body("two", labels={"tier": "b"}))
    with pytest.raises(k8s.ApiException) as conflict:
        await call(api.create_namespaced_job, NS, job_body("one"))
    assert conflict.value.status == 409 and '"reason":"AlreadyExists"' in conflict.value.body
    with pytest.raises(k8s.ApiException) as missing:
        await call(api.read_namespaced_job, "three", NS)
    assert missing.value.status == 404
    with pytest.raises(k8s.ApiException) as no_namespace:
        await call(api.create_namespaced_job, "nowhere", job_body("four"))
    assert no_namespace.value.status == 404
    for selector, names in (
        ("tier=a", ["one"]),
        ("tier!=a", ["two"]),
        ("tier in (a,b),app.kubernetes.io/managed-by=caspian", ["one", "two"]),
        ("!tier", []),
        ("other", []),
    ):
        listed = await call(api.list_namespaced_job, NS, label_selector=selector)
        assert [j.metadata.name for j in listed.items] == names, selector


async def test_watch_resumes_from_resource_version_and_answers_410_when_compacted(spoke, clock):
    api = batch_api(spoke.url)
    listed = await call(api.list_namespaced_job, NS)
    await call(api.create_namespaced_job, NS, job_body("watched", runtime=10))
    clock.advance(10)
    await _until(lambda: call(api.read_namespaced_job, "watched", NS), lambda j: j.status.conditions)

    def stream(rv):
        seen = []
        for event in watch.Watch().stream(
            api.list_namespaced_job, NS, resource_version=rv, timeout_seconds=STREAM_TIMEOUT_S
        ):
            seen.append(
                (event["type"], event["object"].metadata.name, bool(event["object"].status.conditions))
            )
            if seen[-1][2]:
                break
        return seen

    seen = await call(stream, listed.metadata.resource_version)
    assert seen[0] == ("ADDED", "watched", False) and seen[-1] == ("MODIFIED", "watched", True)

    async with httpx.AsyncClient(base_url=spoke.url) as http:
        await http.post("/_sim/expire-watches")
    with pytest.raises(k8s.ApiException) as gone:
        await call(stream, listed.metadata.resource_version)
    assert gone.value.status == 410


async def test_delete_with_a_stale_uid_precondition_is_a_conflict(spoke):
    api = batch_api(spoke.url)
    created = await call(api.create_namespaced_job, NS, job_body("guarded"))
    stale = k8s.V1DeleteOptions(preconditions=k8s.V1Preconditions(uid="not-" + created.metadata.uid))
    with pytest.raises(k8s.ApiException) as conflict:
        await call(api.delete_namespaced_job, "guarded", NS, body=stale)
    assert conflict.value.status == 409
    current = k8s.V1DeleteOptions(preconditions=k8s.V1Preconditions(uid=created.metadata.uid))
    await call(api.delete_namespaced_job, "guarded", NS, body=current)
    assert (await call(api.list_namespaced_job, NS)).items == []


@pytest.mark.parametrize("policy, pods_left", [("Background", 0), ("Orphan", 1), (None, 1)])
async def test_delete_propagation(spoke, policy, pods_left):
    api, core = batch_api(spoke.url), core_api(spoke.url)
    await call(api.create_namespaced_job, NS, job_body("doomed"))
    if policy:
        await call(api.delete_namespaced_job, "doomed", NS, propagation_policy=policy)
    else:
        await call(api.delete_namespaced_job, "doomed", NS)  # the API server's default for Jobs orphans
    pods = (await call(core.list_namespaced_pod, NS)).items
    assert len(pods) == pods_left
    assert all(not p.metadata.owner_references for p in pods)  # orphans have no owner left


async def test_ttl_after_finished_removes_job_and_pods(spoke, clock):
    api, core = batch_api(spoke.url), core_api(spoke.url)
    await call(api.create_namespaced_job, NS, job_body("tidy", runtime=30, ttlSecondsAfterFinished=100))
    clock.advance(30)
    await _until(lambda: call(api.read_namespaced_job, "tidy", NS), lambda j: j.status.conditions)
    clock.advance(100)
    await _until(lambda: call(api.list_namespaced_job, NS), lambda jobs: not jobs.items)
    assert (await call(core.list_namespaced_pod, NS)).items == []


async def test_failure_label_and_active_deadline(spoke, clock):
    api = batch_api(spoke.url)
    await call(
        api.create_namespaced_job, NS, job_body("bad", labels={"sim.caspian.io/fail": "true"}, backoffLimit=1)
    )
    await call(api.create_namespaced_job, NS, job_body("slow", runtime=600, activeDeadlineSeconds=100))
    # The first pod fails at once; only then move time, or the retry 10 s later would fall after it.
    await _until(lambda: call(api.read_namespaced_job, "bad", NS), lambda j: (j.status.failed or 0) >= 1)
    clock.advance(100)
    bad = await _until(lambda: call(api.read_namespaced_job, "bad", NS), lambda j: j.status.conditions)
    failed = next(c for c in bad.status.conditions if c.type == "Failed")
    assert failed.reason == "BackoffLimitExceeded" and bad.status.failed == 2
    slow = await _until(lambda: call(api.read_namespaced_job, "slow", NS), lambda j: j.status.conditions)
    failed = next(c for c in slow.status.conditions if c.type == "Failed")
    assert failed.reason == "DeadlineExceeded"
    assert failed.last_transition_time == START + timedelta(seconds=100)


async def test_pods_wait_for_room_then_run(spoke, clock):
    api = batch_api(spoke.url)
    for name in ("a", "b", "c"):  # 10 cores each, two 15.8-core workers
        await call(api.create_namespaced_job, NS, job_body(name, cpu="10", runtime=50))
    waiting = await call(api.read_namespaced_job, "c", NS)
    assert waiting.status.active == 1 and waiting.status.ready == 0 and waiting.status.start_time is None
    clock.advance(50)
    started = await _until(lambda: call(api.read_namespaced_job, "c", NS), lambda j: j.status.ready)
    assert started.status.start_time == START + timedelta(seconds=50)


async def test_state_file_keeps_jobs_across_a_restart(tmp_path, clock):
    state = str(tmp_path / "kr.json")
    first = SpokeSimulator("carbon-kr", clock, state_file=state)
    port = await first.start()
    created = await call(batch_api(first.url).create_namespaced_job, NS, job_body("durable", runtime=120))
    await first.stop()

    second = SpokeSimulator("carbon-kr", clock, state_file=state)
    await second.start(port=port)
    try:
        api = batch_api(second.url)
        again = await call(api.read_namespaced_job, "durable", NS)
        assert again.metadata.uid == created.metadata.uid and again.status.ready == 1
        # The watch history is not kept: an old resourceVersion must re-list.
        with pytest.raises(k8s.ApiException) as gone:
            await call(
                lambda: list(
                    watch.Watch().stream(api.list_namespaced_job, NS, resource_version="2", timeout_seconds=1)
                )
            )
        assert gone.value.status == 410
        clock.advance(120)  # the restored pod still finishes on the clock
        await _until(lambda: call(api.read_namespaced_job, "durable", NS), lambda j: j.status.succeeded)
    finally:
        await second.stop()


async def test_stop_waits_for_a_periodic_save_in_flight(tmp_path, clock):
    """Cancelling the saver does not stop a write already in its thread. `stop` must wait for it before its own
    final write: two writers of one temporary file race (one renames it from under the other), and a restart
    could read a file still being written."""
    state = str(tmp_path / "kr.json")
    in_write, release = threading.Event(), threading.Event()
    writes = {"started": 0, "finished": 0}

    class SlowSaves(SpokeSimulator):
        def _save_snapshot(self, snapshot):
            writes["started"] += 1
            if not in_write.is_set():
                in_write.set()
                release.wait(5)
            super()._save_snapshot(snapshot)
            writes["finished"] += 1

    sim = SlowSaves("carbon-kr", clock, state_file=state)
    await sim.start()
    await call(batch_api(sim.url).create_namespaced_job, NS, job_body("late", runtime=60))
    assert await asyncio.to_thread(in_write.wait, 5)
    stopping = asyncio.create_task(sim.stop())
    await asyncio.sleep(0.3)
    assert not stopping.done()  # still waiting for the periodic write
    release.set()
    await stopping
    assert writes["started"] == writes["finished"] >= 2
    restored = SpokeSimulator("carbon-kr", clock, state_file=state)
    await restored.start()
    try:
        assert (await call(batch_api(restored.url).read_namespaced_job, "late", NS)).metadata.name == "late"
    finally:
        await restored.stop()


async def test_outage_modes(spoke):
    async with httpx.AsyncClient(base_url=spoke.url, timeout=5) as http:
        await http.post("/_sim/outage", json={"mode": "unavailable"})
        assert (await http.get("/version")).status_code == 503
        await http.post("/_sim/outage", json={"mode": "hang"})
        with pytest.raises(httpx.ReadTimeout):
            await http.get("/version", timeout=0.3)
        assert (await http.get("/_sim/state")).json()["outage"] == "hang"
        await http.delete("/_sim/outage")
        assert (await http.get("/version")).status_code == 200


async def _until(read, done, within: float = 5.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = await read()
        if done(value):
            return value
        assert loop.time() < deadline, f"condition not reached: {value}"
        await asyncio.sleep(0.02)
