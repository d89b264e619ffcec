"""Each service as a real process, driven by the real grpcurl binary."""

import json
import subprocess
import sys

import pytest

from services.launcher.procs import ServiceProcess
from tests.support.grpcurl import grpcurl

SERVICES = {
    "carbon": "caspian.v1.CarbonService",
    "optimizer": "caspian.v1.OptimizerService",
    "hub": "caspian.v1.HubService",
    "dispatcher": "caspian.v1.DispatcherService",
}


@pytest.fixture(scope="module")
def processes():
    procs = {}
    try:
        for name in SERVICES:
            env = {f"CASPIAN_{name.upper()}_PORT": "0", f"CASPIAN_{name.upper()}_METRICS_PORT": "0"}
            procs[name] = ServiceProcess(f"services.{name}", env=env).start()
        yield procs
    finally:
        for proc in procs.values():
            proc.terminate()


@pytest.mark.parametrize("name", list(SERVICES))
def test_grpcurl_lists_service_health_and_reflection(processes, name):
    out = grpcurl(processes[name].address, "list")
    assert out.returncode == 0, out.stderr
    listed = set(out.stdout.split())
    assert {SERVICES[name], "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= listed


@pytest.mark.parametrize("name", list(SERVICES))
def test_grpcurl_health_check_serving(processes, name):
    for service in ("", SERVICES[name]):
        out = grpcurl(processes[name].address, "grpc.health.v1.Health/Check", data={"service": service})
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["status"] == "SERVING"


def test_sigterm_stops_cleanly(processes):
    proc = ServiceProcess("services.optimizer", env={"CASPIAN_OPTIMIZER_PORT": "0"}).start()
    assert proc.terminate() == 0
    assert any('"msg":"stopped"' in line for line in proc.log_lines)


@pytest.mark.parametrize(
    "variable, value",
    [
        ("CASPIAN_HUB_PORT", "abc"),
        ("CASPIAN_CARBON_METRICS_PORT", "-7"),
        ("CASPIAN_OPTIMIZER_SHUTDOWN_GRACE_SECONDS", "x"),
    ],
)
def test_bad_setting_stops_service_with_one_line(variable, value):
    module = "services." + variable.split("_")[1].lower()
    result = subprocess.run(
        [sys.executable, "-m", module],
        env={"PATH": "", variable: value},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and variable in lines[0], result.stderr
