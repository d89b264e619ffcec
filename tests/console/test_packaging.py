"""The console in compose and deploy/k8s: one more service, hardened like the others, with HTTP health probes
that answer on a real console process."""

from __future__ import annotations

import pathlib
import shutil
import urllib.error
import urllib.request

import pytest
import yaml

from services.launcher.procs import ServiceProcess
from tests.ops.test_k8s import find, one, render

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_compose_runs_the_console_after_the_hub_with_a_health_check():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    console = compose["services"]["console"]
    assert console["command"] == ["python", "-m", "services.console"]
    env = console["environment"]
    assert env["CASPIAN_CONSOLE_HUB_ADDRESS"] == "hub:50050"
    assert env["CASPIAN_CONSOLE_CARBON_ADDRESS"] == "carbon:50051"
    assert env["CASPIAN_CONSOLE_HOST"] == "0.0.0.0" and env["CASPIAN_CONSOLE_PORT"] == "8080"
    assert console["depends_on"]["hub"] == {"condition": "service_healthy"}
    assert "/healthz" in " ".join(console["healthcheck"]["test"])
    assert console["read_only"] is True and console["cap_drop"] == ["ALL"]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_the_k8s_base_has_a_hardened_console_with_http_probes():
    docs = render("deploy/k8s")
    deployment = one(docs, "Deployment", "console")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "caspian-console" and pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    [container] = pod["containers"]
    assert container["command"] == ["python", "-m", "services.console"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}, probe
    [config] = find(docs, "ConfigMap")
    assert config["data"]["CASPIAN_CONSOLE_HUB_ADDRESS"] == "hub:50050"
    service = one(docs, "Service", "console")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {"http": 8080}


@pytest.mark.slow  # starts the console as a process
def test_the_health_endpoint_answers_without_a_hub():
    # Nothing listens at these addresses: the console still serves its health endpoint and its pages say why
    # the hub cannot be reached, instead of failing to start.
    proc = ServiceProcess(
        "services.console",
        env={
            "CASPIAN_CONSOLE_PORT": "0",
            "CASPIAN_CONSOLE_HUB_ADDRESS": "127.0.0.1:9",
            "CASPIAN_CONSOLE_CARBON_ADDRESS": "127.0.0.1:9",
            "CASPIAN_CONSOLE_TIMEOUT_SECONDS": "2",
        },
    ).start()
    try:
        with urllib.request.urlopen(f"http://{proc.address}/healthz", timeout=5) as response:
            assert response.status == 200
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://{proc.address}/", timeout=10)
        assert refused.value.code == 503
        assert "UNAVAILABLE" in refused.value.read().decode()
        with urllib.request.urlopen(f"http://{proc.address}/metrics", timeout=5) as response:
            exposed = response.read().decode()
        assert 'console_http_requests_total{route="/",status="503"} 1.0' in exposed
        assert 'console_http_requests_total{route="/healthz",status="200"} 1.0' in exposed
    finally:
        proc.terminate()
