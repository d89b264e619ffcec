"""Real processes: kubectl against a simulated spoke, and a dispatcher killed with SIGKILL between creating a Job
and answering for it."""

import os
import shutil
import signal
import subprocess
import sys
import time

import grpc
import httpx
import pytest
from kubernetes import client as k8s

from caspian.v1 import dispatcher_pb2, dispatcher_pb2_grpc
from clusters.simulator.kubeconfig import write_kubeconfig
from services.dispatcher.manifests import job_name_for
from services.launcher.procs import ServiceProcess
from tests.dispatcher.support import app_wrapper, dispatch_request

NS = "caspian-jobs"


def until(condition, within: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + within
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def clock_env():
    """One simulated clock for every process: 100 simulated seconds per real second."""
    return {
        "CASPIAN_CLOCK_MODE": "sim",
        "CASPIAN_CLOCK_START": "2023-06-01T00:00:00Z",
        "CASPIAN_CLOCK_SPEEDUP": "100",
        "CASPIAN_CLOCK_ANCHOR": str(time.time()),
    }


@pytest.fixture
def spoke(clock_env, tmp_path):
    proc = ServiceProcess(
        "clusters.simulator", env=clock_env, args=("--name", "carbon-kr", "--port", "0")
    ).start()
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", {"carbon-kr": f"http://{proc.address}"})
    yield proc, kubeconfig
    assert proc.terminate() == 0, "\n".join(proc.log_lines[-10:])


def jobs_on(url: str) -> list[str]:
    api = k8s.BatchV1Api(k8s.ApiClient(k8s.Configuration(host=url)))
    return [j.metadata.name for j in api.list_namespaced_job(NS).items]


def test_kubectl_get_describe_delete(spoke, tmp_path):
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (make tools installs Debian's kubernetes-client)")
    proc, kubeconfig = spoke
    url = f"http://{proc.address}"
    api = k8s.BatchV1Api(k8s.ApiClient(k8s.Configuration(host=url)))
    body = {
        "metadata": {"name": "smoke", "annotations": {"caspian.io/expected-runtime-seconds": "3600"}},
        "spec": {
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox"}]}
            }
        },
    }
    api.create_namespaced_job(NS, body)
    env = {**os.environ, "HOME": str(tmp_path), "KUBECACHEDIR": str(tmp_path / "cache")}

    def run(*args):
        out = subprocess.run(
            [kubectl, "--kubeconfig", kubeconfig, "--context", "carbon-kr", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout

    listed = run("get", "jobs,nodes")
    assert "job.batch/smoke" in listed and "Running" in listed
    for node in ("carbon-kr-control-plane", "carbon-kr-worker", "carbon-kr-worker2"):
        assert f"node/{node} " in listed
    assert "control-plane" in listed and "Ready" in listed
    described = run("describe", "job", "smoke")
    assert "Name:" in described and "smoke" in described
    assert "caspian.io/expected-runtime-seconds: 3600" in described
    assert "1 Active (1 Ready)" in described
    assert 'job.batch "smoke" deleted' in run("delete", "job", "smoke")
    assert jobs_on(url) == []
    assert "smoke" not in run("get", "pods")  # kubectl deletes in the background: the pod went too


def dispatcher_env(kubeconfig: str, clock_env: dict) -> dict:
    return {
        **clock_env,
        "CASPIAN_DISPATCHER_PORT": "0",
        "CASPIAN_DISPATCHER_METRICS_PORT": "-1",
        "CASPIAN_DISPATCHER_KUBECONFIG": kubeconfig,
        "CASPIAN_DISPATCHER_REQUEST_TIMEOUT_SECONDS": "20",
        "CASPIAN_DISPATCHER_SHUTDOWN_GRACE_SECONDS": "0",
    }


def test_dispatcher_killed_after_create_makes_no_second_job_and_reports_status(spoke, clock_env):
    proc, kubeconfig = spoke
    url = f"http://{proc.address}"
    # The spoke stores the next Job and then takes 30 s to say so: the window to kill the dispatcher in.
    slow = {
        "status": 0,
        "count": 1,
        "verbs": ["create"],
        "resource": "jobs",
        "delay_seconds": 30,
        "after_commit": True,
    }
    httpx.post(f"{url}/_sim/faults", json=slow, timeout=5).raise_for_status()
    request = dispatch_request(app_wrapper("crash-1", runtime_s=150), "carbon-kr")

    first = ServiceProcess("services.dispatcher", env=dispatcher_env(kubeconfig, clock_env)).start()
    try:
        with grpc.insecure_channel(first.address) as channel:
            pending = dispatcher_pb2_grpc.DispatcherServiceStub(channel).DispatchJob.future(
                request, timeout=30
            )
            until(lambda: jobs_on(url), what="the Job on the spoke")
            first.proc.send_signal(signal.SIGKILL)
            first.proc.wait(10)
            with pytest.raises(grpc.RpcError) as err:
                pending.result()
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        first.kill()

    second = ServiceProcess("services.dispatcher", env=dispatcher_env(kubeconfig, clock_env)).start()
    try:
        with grpc.insecure_channel(second.address) as channel:
            stub = dispatcher_pb2_grpc.DispatcherServiceStub(channel)
            stream = stub.WatchJobEvents(dispatcher_pb2.WatchJobEventsRequest(), timeout=30)
            snapshot = []
            for item in stream:
                if item.HasField("bookmark"):
                    break
                snapshot.append(item)
            known = [i.job for i in snapshot if i.HasField("job") and i.job.app_wrapper_id == "crash-1"]
            assert len(known) == 1 and known[0].job_name == job_name_for("crash-1")
            assert known[0].phase in (dispatcher_pb2.JOB_PHASE_RUNNING, dispatcher_pb2.JOB_PHASE_SUCCEEDED)

            # The hub retries its dispatch: the existing Job is adopted, not duplicated.
            again = stub.DispatchJob(request, timeout=10)
            assert not again.created and again.job_name == job_name_for("crash-1")
            assert jobs_on(url) == [job_name_for("crash-1")]

            # And the hub hears the end of it (150 simulated seconds are 1.5 real ones), live if not already.
            if known[0].phase != dispatcher_pb2.JOB_PHASE_SUCCEEDED:
                for item in stream:
                    if item.HasField("job") and item.job.phase == dispatcher_pb2.JOB_PHASE_SUCCEEDED:
                        assert item.job.app_wrapper_id == "crash-1"
                        break
            stream.cancel()
    finally:
        assert second.terminate() == 0


def test_frozen_spoke_process_goes_not_ready_and_comes_back(spoke, clock_env):
    proc, kubeconfig = spoke
    env = {
        **dispatcher_env(kubeconfig, clock_env),
        "CASPIAN_DISPATCHER_REQUEST_TIMEOUT_SECONDS": "1",
        "CASPIAN_DISPATCHER_PROBE_INTERVAL_SECONDS": "0.25",
        "CASPIAN_DISPATCHER_NOT_READY_AFTER_SECONDS": "1",
    }
    dispatcher = ServiceProcess("services.dispatcher", env=env).start()
    try:
        with grpc.insecure_channel(dispatcher.address) as channel:
            stub = dispatcher_pb2_grpc.DispatcherServiceStub(channel)
            stream = stub.WatchJobEvents(dispatcher_pb2.WatchJobEventsRequest(), timeout=60)
            stub.DispatchJob(
                dispatch_request(app_wrapper("frozen-1", runtime_s=3600), "carbon-kr"), timeout=10
            )
            seen = []

            def next_matching(predicate):
                for item in stream:
                    seen.append(item)
                    if predicate(item):
                        return item
                raise AssertionError("stream ended")

            next_matching(lambda i: i.HasField("job") and i.job.phase == dispatcher_pb2.JOB_PHASE_RUNNING)
            proc.proc.send_signal(signal.SIGSTOP)  # the spoke stops answering, its state intact
            try:
                down = next_matching(lambda i: i.HasField("cluster") and not i.cluster.ready)
                assert down.cluster.cluster == "carbon-kr"
                unknown = next_matching(lambda i: i.HasField("job"))
                assert unknown.job.phase == dispatcher_pb2.JOB_PHASE_UNKNOWN
            finally:
                proc.proc.send_signal(signal.SIGCONT)
            next_matching(lambda i: i.HasField("cluster") and i.cluster.ready)
            back = next_matching(lambda i: i.HasField("job"))
            assert (
                back.job.app_wrapper_id == "frozen-1" and back.job.phase == dispatcher_pb2.JOB_PHASE_RUNNING
            )
            stream.cancel()
    finally:
        assert dispatcher.terminate() == 0


@pytest.mark.parametrize(
    "kubeconfig, context",
    [("/nonexistent/kubeconfig", ""), ("GENERATED", "carbon-xx")],
)
def test_bad_kubeconfig_stops_the_dispatcher_with_one_line(tmp_path, kubeconfig, context):
    if kubeconfig == "GENERATED":
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", {"carbon-kr": "http://127.0.0.1:1"})
    env = {
        "PATH": os.environ["PATH"],
        "CASPIAN_DISPATCHER_KUBECONFIG": kubeconfig,
        "CASPIAN_DISPATCHER_PORT": "0",
    }
    if context:
        env["CASPIAN_DISPATCHER_CONTEXTS"] = context
    result = subprocess.run(
        [sys.executable, "-m", "services.dispatcher"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "CASPIAN_DISPATCHER_KUBECONFIG" in lines[0], result.stderr
