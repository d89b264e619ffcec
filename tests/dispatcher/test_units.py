"""Pure parts of the dispatcher: Job names and manifests, retry delays, the circuit breaker, readiness and the
free-capacity formula."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.errors import FailedPrecondition, InvalidArgument
from services.dispatcher.capacity import Resources, free_capacity
from services.dispatcher.job_phase import JobPhase, job_state
from services.dispatcher.manifests import JobRequest, JobSettings, job_manifest, job_name_for
from services.dispatcher.resilience import CircuitBreaker, Readiness, RetryPolicy

DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
NOW = datetime(2023, 6, 1, tzinfo=UTC)


@given(st.text(min_size=1, max_size=300))
def test_job_names_are_deterministic_dns_labels(appwrapper_id):
    name = job_name_for(appwrapper_id)
    assert name == job_name_for(appwrapper_id)
    assert len(name) <= 63 and DNS_1123_LABEL.match(name), name


def test_job_names_keep_the_id_readable_and_differ_by_hash():
    assert job_name_for("train-resnet-42").startswith("train-resnet-42-")
    assert job_name_for("Train_ResNet") != job_name_for("train-resnet")
    long = "a" * 200
    assert job_name_for(long) != job_name_for(long + "b")


def request(**overrides) -> JobRequest:
    values = dict(
        app_wrapper_id="aw-1",
        image="busybox",
        cpu_millis=250,
        memory_bytes=512 << 20,
        expected_runtime_seconds=90.2,
    )
    values.update(overrides)
    return JobRequest(**values)


def test_manifest_fields():
    manifest = job_manifest(
        request(
            deadline=NOW + timedelta(minutes=30), labels={"team": "x", "caspian.io/appwrapper-id": "spoof"}
        ),
        "jobs",
        NOW,
        JobSettings(backoff_limit=1, ttl_seconds_after_finished=600),
    )
    meta, spec = manifest["metadata"], manifest["spec"]
    assert meta["name"] == job_name_for("aw-1") and meta["namespace"] == "jobs"
    assert meta["labels"] == {
        "team": "x",
        "app.kubernetes.io/managed-by": "caspian",
        "caspian.io/appwrapper-id": "aw-1",
    }
    assert meta["annotations"]["caspian.io/expected-runtime-seconds"] == "91"
    assert (spec["backoffLimit"], spec["ttlSecondsAfterFinished"], spec["activeDeadlineSeconds"]) == (
        1,
        600,
        1800,
    )
    resources = spec["template"]["spec"]["containers"][0]["resources"]
    assert resources["requests"] == resources["limits"] == {"cpu": "250m", "memory": str(512 << 20)}
    assert spec["template"]["metadata"]["labels"]["caspian.io/appwrapper-id"] == "aw-1"


def test_manifest_without_deadline_has_no_active_deadline():
    spec = job_manifest(request(), "jobs", NOW, JobSettings())["spec"]
    assert "activeDeadlineSeconds" not in spec


@pytest.mark.parametrize(
    "overrides, error, field",
    [
        ({"app_wrapper_id": ""}, InvalidArgument, "app_wrapper.id"),
        ({"app_wrapper_id": "x" * 64}, InvalidArgument, "app_wrapper.id"),
        ({"image": ""}, InvalidArgument, "app_wrapper.template.image"),
        ({"gpus": -1}, InvalidArgument, "app_wrapper.template.resources.gpus"),
        ({"labels": {"ok": "not ok!"}}, InvalidArgument, "app_wrapper.labels[ok]"),
        ({"deadline": NOW}, FailedPrecondition, "app_wrapper.deadline"),
    ],
)
def test_manifest_rejects_bad_requests_naming_the_field(overrides, error, field):
    with pytest.raises(error) as err:
        job_manifest(request(**overrides), "jobs", NOW, JobSettings())
    assert err.value.field == field


def test_retry_delays_are_full_jitter_capped_exponentials():
    policy = RetryPolicy(attempts=5, base_seconds=0.1, max_seconds=1.0)
    assert [policy.delay(n, rng=lambda: 1.0) for n in range(5)] == [0.1, 0.2, 0.4, 0.8, 1.0]
    assert policy.delay(3, rng=lambda: 0.0) == 0.0


def test_circuit_breaker_opens_fails_fast_then_half_opens():
    now = [0.0]
    breaker = CircuitBreaker(failures=3, open_seconds=10, now=lambda: now[0])
    for _ in range(2):
        breaker.record_failure()
    assert breaker.allow() and not breaker.is_open
    breaker.record_failure()
    assert breaker.is_open and not breaker.allow()
    now[0] = 10.0
    assert breaker.allow()  # one trial call
    assert not breaker.allow()
    breaker.record_failure()  # the trial failed: open again
    assert not breaker.allow()
    now[0] = 20.0
    assert breaker.allow()
    breaker.record_success()
    assert not breaker.is_open and breaker.allow() and breaker.allow()


def test_readiness_turns_not_ready_after_silence_and_back_on_contact():
    now = [0.0]
    readiness = Readiness(not_ready_after=5, now=lambda: now[0])
    now[0] = 4.9
    assert not readiness.check() and readiness.ready is None
    assert readiness.contact() and readiness.ready
    now[0] = 9.8
    assert not readiness.check()
    now[0] = 10.0
    assert readiness.check() and readiness.ready is False
    assert not readiness.check()  # reported once
    assert readiness.contact() and not readiness.contact()


def node(name, cpu, memory, ready=True, taint=False, gpus=0):
    allocatable = {"cpu": cpu, "memory": memory, **({"nvidia.com/gpu": str(gpus)} if gpus else {})}
    return {
        "metadata": {"name": name},
        "spec": {"taints": [{"key": "x", "effect": "NoSchedule"}]} if taint else {},
        "status": {
            "allocatable": allocatable,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def pod(node_name, cpu, memory, phase="Running", uid="", limits_only=False):
    amounts = {"cpu": cpu, "memory": memory}
    resources = {"limits": amounts} if limits_only else {"requests": amounts, "limits": amounts}
    return {
        "metadata": {"labels": {"batch.kubernetes.io/controller-uid": uid} if uid else {}},
        "spec": {"nodeName": node_name, "containers": [{"name": "c", "resources": resources}]},
        "status": {"phase": phase},
    }


def job(uid, cpu, memory):
    return uid, Resources.from_quantities({"cpu": cpu, "memory": memory})


def test_free_capacity_is_ready_allocatable_minus_pods_and_waiting_jobs():
    nodes = [
        node("cp", "4", "8Gi", taint=True),
        node("w1", "8", "16Gi", gpus=1),
        node("w2", "8", "16Gi"),
        node("down", "8", "16Gi", ready=False),
    ]
    pods = [
        pod("w1", "1500m", "2Gi", uid="j1"),
        pod("w2", "1", "1Gi", limits_only=True),
        pod("w2", "2", "2Gi", phase="Succeeded"),  # finished: frees its room
        pod("down", "4", "4Gi"),  # on a node that does not count
    ]
    jobs = [job("j1", "1500m", "2Gi"), job("j2", "3", "4Gi")]  # j1 has its pod; j2 waits
    capacity = free_capacity(nodes, pods, jobs)
    gib = 1 << 30
    assert capacity.ready_nodes == 2
    assert capacity.allocatable == Resources(16_000, 32 * gib, 1)
    assert capacity.free == Resources(16_000 - 1500 - 1000 - 3000, (32 - 2 - 1 - 4) * gib, 1)


def test_job_state_from_job_status():
    base = {"metadata": {}, "status": {}}
    assert job_state(base)[0] is JobPhase.PENDING
    assert (
        job_state({"status": {"active": 1, "ready": 0, "startTime": "2023-06-01T00:00:00Z"}})[0]
        is JobPhase.PENDING
    )
    running = job_state({"status": {"active": 1, "ready": 1, "startTime": "2023-06-01T00:00:00Z"}})
    assert running[0] is JobPhase.RUNNING and running[2] == NOW
    # A cluster that does not fill status.ready: an active pod after startTime counts.
    assert job_state({"status": {"active": 1, "startTime": "2023-06-01T00:00:00Z"}})[0] is JobPhase.RUNNING
    done = {"type": "Complete", "status": "True"}
    assert job_state({"status": {"conditions": [done], "completionTime": "2023-06-01T01:00:00Z"}})[:2] == (
        JobPhase.SUCCEEDED,
        "",
    )
    failed = {"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": "too long"}
    phase, reason, _, _ = job_state({"status": {"conditions": [failed]}})
    assert phase is JobPhase.FAILED and reason == "DeadlineExceeded: too long"
