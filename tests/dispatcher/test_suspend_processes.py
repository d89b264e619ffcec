"""Real processes: kubectl suspends and resumes a Job on a simulated spoke and shows it, and a dispatcher killed
between deciding a suspension and patching leaves, after a restart and the hub's retry, exactly one suspension."""

import os
import shutil
import signal
import subprocess
import time

import grpc
import httpx
import pytest
from kubernetes import client as k8s

from caspian.v1 import common_pb2, dispatcher_pb2, dispatcher_pb2_grpc
from services.common.timeconv import to_duration
from services.dispatcher.manifests import job_name_for
from services.launcher.procs import ServiceProcess
from tests.dispatcher.support import app_wrapper, dispatch_request
from tests.dispatcher.test_processes import clock_env, dispatcher_env, spoke, until  # noqa: F401

NS = "caspian-jobs"


def read_job(url: str, name: str) -> k8s.V1Job:
    return k8s.BatchV1Api(k8s.ApiClient(k8s.Configuration(host=url))).read_namespaced_job(name, NS)


def job_pods(url: str, name: str) -> list[str]:
    pods = k8s.CoreV1Api(k8s.ApiClient(k8s.Configuration(host=url))).list_namespaced_pod(
        NS, label_selector=f"job-name={name}"
    )
    return [p.metadata.name for p in pods.items]


def test_kubectl_shows_a_suspended_job_and_patches_it(spoke, tmp_path):  # noqa: F811
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (make tools installs Debian's kubernetes-client)")
    proc, kubeconfig = spoke
    url = f"http://{proc.address}"
    body = {
        "metadata": {"name": "pausable", "annotations": {"caspian.io/expected-runtime-seconds": "360000"}},
        "spec": {
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox"}]}
            }
        },
    }
    k8s.BatchV1Api(k8s.ApiClient(k8s.Configuration(host=url))).create_namespaced_job(NS, body)
    env = {**os.environ, "HOME": str(tmp_path), "KUBECACHEDIR": str(tmp_path / "cache")}

    def run(*args: str) -> str:
        result = subprocess.run(
            [kubectl, "--kubeconfig", kubeconfig, "--context", "carbon-kr", "-n", NS, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    until(lambda: "Running" in run("get", "jobs", "pausable"), what="the Job running")
    # As the Kubernetes documentation does it: a strategic merge patch of spec.suspend.
    assert "patched" in run("patch", "job/pausable", "--type=strategic", "-p", '{"spec":{"suspend":true}}')
    row = run("get", "jobs", "pausable", "--no-headers").split()
    assert row[:2] == ["pausable", "Suspended"], row
    assert job_pods(url, "pausable") == []
    condition = run(
        "get", "job", "pausable", "-o", "jsonpath={.status.conditions[0].type}={.status.conditions[0].status}"
    )
    assert condition == "Suspended=True"
    assert run("get", "job", "pausable", "-o", "jsonpath={.status.startTime}") == ""

    run("patch", "job/pausable", "--type=merge", "-p", '{"spec":{"suspend":false}}')
    until(lambda: "Running" in run("get", "jobs", "pausable", "--no-headers"), what="the Job running again")
    reason = run("get", "job", "pausable", "-o", "jsonpath={.status.conditions[0].reason}")
    assert reason == "JobResumed"
    assert len(job_pods(url, "pausable")) == 1
    # An immutable field is refused, as by a real API server.
    refused = subprocess.run(
        [
            kubectl,
            "--kubeconfig",
            kubeconfig,
            "--context",
            "carbon-kr",
            "-n",
            NS,
            "patch",
            "job/pausable",
            "--type=merge",
            "-p",
            '{"spec":{"completions":3}}',
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert refused.returncode != 0 and "field is immutable" in refused.stderr


def test_dispatcher_killed_before_its_suspend_patch_lands_suspends_exactly_once(spoke, clock_env):  # noqa: F811
    proc, kubeconfig = spoke
    url = f"http://{proc.address}"
    aw = app_wrapper("pause-crash-1", runtime_s=360_000)
    aw.interruptible.CopyFrom(common_pb2.Interruptible(resume_overhead=to_duration(300)))
    name = job_name_for("pause-crash-1")
    request = dispatcher_pb2.SetJobSuspendedRequest(
        app_wrapper_id="pause-crash-1", cluster="carbon-kr", suspend=True
    )

    first = ServiceProcess("services.dispatcher", env=dispatcher_env(kubeconfig, clock_env)).start()
    try:
        with grpc.insecure_channel(first.address) as channel:
            stub = dispatcher_pb2_grpc.DispatcherServiceStub(channel)
            stub.DispatchJob(dispatch_request(aw, "carbon-kr", checkpointing=True), timeout=10)
            until(lambda: job_pods(url, name), what="the Job's pod")
            # The spoke holds the next patch 6 s before applying it: the dispatcher is killed in that window,
            # after its decision (it has read the Job) and before the patch has landed.
            slow = {"status": 0, "count": 1, "verbs": ["patch"], "resource": "jobs", "delay_seconds": 6}
            httpx.post(f"{url}/_sim/faults", json=slow, timeout=5).raise_for_status()
            pending = stub.SetJobSuspended.future(request, timeout=30)
            until(
                lambda: httpx.get(f"{url}/_sim/state", timeout=5).json()["faults"] == 0, what="the patch sent"
            )
            first.proc.send_signal(signal.SIGKILL)
            first.proc.wait(10)
            released_at = time.monotonic() + 6.5
            with pytest.raises(grpc.RpcError):
                pending.result()
            assert read_job(url, name).spec.suspend is False  # not landed yet
    finally:
        first.kill()

    second = ServiceProcess("services.dispatcher", env=dispatcher_env(kubeconfig, clock_env)).start()
    try:
        with grpc.insecure_channel(second.address) as channel:
            stub = dispatcher_pb2_grpc.DispatcherServiceStub(channel)
            # The hub retries its decision against the restarted dispatcher.
            answer = stub.SetJobSuspended(request, timeout=10)
            assert answer.suspended and answer.suspensions == 1
            # Let the held patch resolve (applied, or refused on its stale resourceVersion), then check.
            until(lambda: time.monotonic() > released_at, what="the held patch")
            job = read_job(url, name)
            assert job.spec.suspend is True
            assert job.metadata.annotations["caspian.io/suspensions"] == "1"
            assert [(c.type, c.status) for c in job.status.conditions] == [("Suspended", "True")]
            assert job_pods(url, name) == []
            again = stub.SetJobSuspended(request, timeout=10)
            assert not again.changed and again.suspensions == 1

            stream = stub.WatchJobEvents(dispatcher_pb2.WatchJobEventsRequest(), timeout=30)
            for item in stream:
                if item.HasField("job") and item.job.app_wrapper_id == "pause-crash-1":
                    assert item.job.phase == dispatcher_pb2.JOB_PHASE_SUSPENDED
                    assert item.job.suspensions == 1 and item.job.checkpointing
                    break
            stream.cancel()
    finally:
        assert second.terminate() == 0
