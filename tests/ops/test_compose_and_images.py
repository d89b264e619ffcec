"""docker-compose.yml against the Compose Specification, the Dockerfile's rules, and the gRPC healthcheck.

No Docker engine runs here, so the compose file is checked by its schema and by what must hold for
`docker compose up --scale optimizer=3` and the `spokes` profile to work.
"""

from __future__ import annotations

import asyncio
import copy
import fnmatch
import pathlib
import re
import shlex
import socket
import subprocess
import sys

import pytest
import yaml

from clusters.simulator.kubeconfig import kubeconfig_for
from services.common import healthcheck
from services.common.server import GrpcServer, ServerSettings
from tests.ops.schemas import errors

ROOT = pathlib.Path(__file__).resolve().parents[2]
SERVICES = {
    "hub": (50050, 9100),
    "carbon": (50051, 9101),
    "optimizer": (50052, 9102),
    "dispatcher": (50053, 9103),
}
SPOKES = ("carbon-kr", "carbon-jp", "carbon-cn")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_file_validates_against_the_compose_specification(compose):
    assert errors("compose-spec.json", compose) == []


@pytest.mark.parametrize(
    "mutate",
    [
        lambda c: c["services"]["hub"].update(healthcheck_interval="10s"),
        lambda c: c["services"]["optimizer"].update(ports="50052"),
        lambda c: c["services"]["hub"]["depends_on"]["carbon"].update(condition="when_ready"),
        lambda c: c.update(service={}),
    ],
    ids=["unknown-service-key", "ports-not-a-list", "bad-condition", "unknown-top-level-key"],
)
def test_the_schema_rejects_broken_compose_files(compose, mutate):
    broken = copy.deepcopy(compose)
    mutate(broken)
    assert errors("compose-spec.json", broken) != []


def _env(service: dict) -> dict[str, str]:
    return {k: str(v) for k, v in service.get("environment", {}).items()}


def test_optimizer_scales_without_fixed_name_or_host_port(compose):
    services = compose["services"]
    assert not any("container_name" in s for s in services.values()), "a container_name prevents --scale"
    optimizer = services["optimizer"]
    assert "ports" not in optimizer and "scale" not in optimizer
    hub = _env(services["hub"])
    assert hub["CASPIAN_HUB_OPTIMIZER_ADDRESS"] == "dns:///optimizer:50052"
    assert hub["CASPIAN_HUB_OPTIMIZER_ROUND_ROBIN"] == "true"
    assert hub["CASPIAN_HUB_CARBON_ADDRESS"] == "carbon:50051"
    assert hub["CASPIAN_HUB_DISPATCHER_ADDRESS"] == "dispatcher:50053"


@pytest.mark.parametrize("name", list(SERVICES))
def test_each_service_binds_all_interfaces_with_fixed_ports_and_grpc_healthcheck(compose, name):
    service, (grpc_port, metrics_port) = compose["services"][name], SERVICES[name]
    env = _env(service)
    prefix = f"CASPIAN_{name.upper()}_"
    assert env[prefix + "HOST"] == "0.0.0.0"
    assert env[prefix + "PORT"] == str(grpc_port)
    assert env[prefix + "METRICS_PORT"] == str(metrics_port)
    assert service["command"] == ["python", "-m", f"services.{name}"]
    assert service["healthcheck"]["test"] == [
        "CMD",
        "python",
        "-m",
        "services.common.healthcheck",
        f"127.0.0.1:{grpc_port}",
    ]
    assert service["build"] == {"context": ".", "dockerfile": "deploy/Dockerfile"}
    assert service["read_only"] is True and service["cap_drop"] == ["ALL"]
    assert "profiles" not in service
    assert {
        "CASPIAN_CLOCK_MODE",
        "CASPIAN_CLOCK_START",
        "CASPIAN_CLOCK_SPEEDUP",
        "CASPIAN_CLOCK_ANCHOR",
    } <= set(env)


def test_only_the_hub_the_console_and_the_dashboards_are_published_on_the_host(compose):
    published = {name: s["ports"] for name, s in compose["services"].items() if "ports" in s}
    assert published == {
        # 50050 unless CASPIAN_HUB_HOST_PORTS gives scaled hubs a range (profile `replicas`).
        "hub": ["127.0.0.1:${CASPIAN_HUB_HOST_PORTS:-50050}:50050"],
        "console": ["127.0.0.1:8080:8080"],
        "prometheus": ["127.0.0.1:9090:9090"],
        "grafana": ["127.0.0.1:3000:3000"],
        "hub-proxy": ["127.0.0.1:50050:50050"],
    }
    assert compose["services"]["hub-proxy"]["profiles"] == ["replicas"]


def test_hub_waits_for_healthy_dependencies_and_keeps_its_database(compose):
    hub = compose["services"]["hub"]
    assert hub["depends_on"] == {
        **{name: {"condition": "service_healthy"} for name in ("carbon", "optimizer", "dispatcher")},
        "postgres": {"condition": "service_healthy", "required": False},
    }
    assert "hub-data:/var/lib/caspian" in hub["volumes"]
    assert _env(hub)["CASPIAN_HUB_DB_PATH"].startswith("/var/lib/caspian/")
    assert "hub-data" in compose["volumes"]


def test_simulated_spokes_are_a_profile(compose):
    services = compose["services"]
    for name in SPOKES:
        spoke = services[name]
        assert spoke["profiles"] == ["spokes"]
        command = spoke["command"]
        assert command[:3] == ["python", "-m", "clusters.simulator"]
        assert command[command.index("--name") + 1] == name and command[command.index("--port") + 1] == "6443"
        assert "CASPIAN_CLOCK_MODE" in spoke["environment"]
        assert "healthcheck" in spoke
    register = services["register-spokes"]
    assert register["profiles"] == ["spokes"]
    assert "deploy/examples/clusters.yaml" in register["command"]
    assert set(register["depends_on"]) == {"hub", *SPOKES}
    # Nothing outside the profile may depend on it, or `docker compose up` without the profile fails.
    for name, service in services.items():
        if "spokes" not in service.get("profiles", []):
            assert not set(service.get("depends_on", {})) & {*SPOKES, "register-spokes"}, name


def test_several_hubs_on_postgresql_are_a_profile_behind_one_address(compose):
    services = compose["services"]
    postgres, proxy, hub = services["postgres"], services["hub-proxy"], services["hub"]
    assert postgres["profiles"] == ["replicas"] and postgres["image"].startswith("postgres:15")
    assert "postgres-data:/var/lib/postgresql/data" in postgres["volumes"]
    assert "pg_isready" in postgres["healthcheck"]["test"] and "ports" not in postgres
    assert postgres["environment"]["POSTGRES_PASSWORD"] == "${CASPIAN_POSTGRES_PASSWORD:-}"  # never a default
    assert _env(hub)["CASPIAN_HUB_DATABASE_URL"] == "${CASPIAN_HUB_DATABASE_URL:-}"  # empty: SQLite
    assert "container_name" not in hub, "a container_name prevents --scale hub=2"
    assert proxy["depends_on"] == {"hub": {"condition": "service_healthy"}}
    conf = (ROOT / "deploy/compose/hub-proxy.conf").read_text()
    assert "server hub:50050 resolve" in conf and "grpc_pass grpc://hubs" in conf and "http2 on" in conf
    # Nothing outside the profile needs it to start, or `docker compose up` without the profile fails.
    for name, service in services.items():
        if "replicas" not in service.get("profiles", []):
            for needed in set(service.get("depends_on", {})) & {"postgres", "hub-proxy"}:
                assert service["depends_on"][needed].get("required") is False, name


def test_dispatcher_kubeconfig_reaches_the_simulated_spokes(compose):
    dispatcher = compose["services"]["dispatcher"]
    [mount] = [v for v in dispatcher["volumes"] if v.endswith(":/etc/caspian/kubeconfig:ro")]
    default = re.match(r"\$\{CASPIAN_KUBECONFIG:-(?P<path>[^}]+)\}", mount)["path"]
    kubeconfig = yaml.safe_load((ROOT / default).read_text())
    servers = {c["name"]: c["cluster"]["server"] for c in kubeconfig["clusters"]}
    contexts = {c["name"]: c["context"]["cluster"] for c in kubeconfig["contexts"]}
    assert servers == {name: f"http://{name}:6443" for name in SPOKES}
    assert contexts == {name: name for name in SPOKES}, (
        "context name = cluster name (cross-service convention)"
    )
    assert _env(dispatcher)["CASPIAN_DISPATCHER_KUBECONFIG"] == "/etc/caspian/kubeconfig"
    assert kubeconfig == kubeconfig_for({name: f"http://{name}:6443" for name in SPOKES})


def test_every_bind_mount_exists_in_the_repository(compose):
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("${"):
                source = re.match(r"\$\{[A-Z_]+:-(?P<path>[^}]+)\}", volume)["path"]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source}"


# ------------------------------------------------------------------------------------------------ Dockerfile


def _dockerfile() -> list[str]:
    """Instructions with continuation lines joined and comments dropped."""
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    text = re.sub(r"\\\n\s*", " ", text)
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _ignored(path: str) -> bool:
    """Whether .dockerignore keeps `path` out of the build context (last matching rule wins)."""
    ignored = False
    for rule in (ROOT / ".dockerignore").read_text().splitlines():
        rule = rule.strip()
        if not rule or rule.startswith("#"):
            continue
        negate = rule.startswith("!")
        pattern = rule.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
            ignored = not negate
    return ignored


def test_dockerfile_is_multi_stage_slim_non_root_and_pinned():
    lines = _dockerfile()
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in lines
    stages = [line for line in lines if line.startswith("FROM ")]
    assert stages == ["FROM ${PYTHON_IMAGE} AS deps", "FROM ${PYTHON_IMAGE} AS runtime"]
    runtime = lines[lines.index(stages[-1]) :]
    users = [line.split()[1] for line in runtime if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("0", "root"), "the final image must not run as root"
    assert int(users[-1].split(":")[0]) >= 10000
    env = " ".join(line for line in runtime if line.startswith("ENV "))
    assert "PYTHONUNBUFFERED=1" in env
    installs = [line for line in lines if "pip install" in line]
    assert installs and all("-c constraints.txt" in line for line in installs)
    assert any(line.startswith("COPY --from=deps ") for line in runtime)
    assert runtime[-1] == 'CMD ["sh", "-c", "exec python -m services.${CASPIAN_SERVICE}"]'
    assert "ARG SERVICE=hub" in runtime and any("CASPIAN_SERVICE=${SERVICE}" in line for line in runtime)


def test_dockerfile_copies_only_what_the_build_context_holds():
    copies = [
        line.split()[1:] for line in _dockerfile() if line.startswith("COPY ") and "--from=" not in line
    ]
    assert copies
    for *sources, _dest in copies:
        for source in sources:
            path = source.rstrip("/")
            assert (ROOT / path).exists(), source
            assert not _ignored(path), f"{source} is excluded by .dockerignore"
    for kept_out in (".venv", ".git", "tests", "bench"):
        assert _ignored(kept_out), kept_out


# ------------------------------------------------------------------------------------------------ healthcheck


async def test_healthcheck_exit_status_follows_grpc_health():
    server = GrpcServer("probe", ServerSettings(port=0, metrics_port=-1))
    await server.start()
    try:
        assert await asyncio.to_thread(healthcheck.main, [server.address]) == 0
        await server.health.enter_graceful_shutdown()
        assert await asyncio.to_thread(healthcheck.main, [server.address]) == 1
    finally:
        await server.stop(0)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{sock.getsockname()[1]}"
    serving, line = await asyncio.to_thread(healthcheck.check, closed, "", 2.0)
    assert not serving and "UNAVAILABLE" in line


async def test_spoke_healthcheck_command_probes_a_real_simulated_spoke(compose):
    from services.launcher.procs import ServiceProcess

    spoke = await asyncio.to_thread(
        ServiceProcess("clusters.simulator", args=("--name", "carbon-kr", "--port", "0")).start
    )
    try:
        test = compose["services"]["carbon-kr"]["healthcheck"]["test"]
        assert test[0] == "CMD"
        command = [arg.replace("127.0.0.1:6443", spoke.address) for arg in test[1:]]
        command[0] = sys.executable
        ok = await asyncio.to_thread(subprocess.run, command, capture_output=True, timeout=30)
        assert ok.returncode == 0, ok.stderr
    finally:
        await asyncio.to_thread(spoke.terminate)
    down = await asyncio.to_thread(subprocess.run, command, capture_output=True, timeout=30)
    assert down.returncode != 0


async def test_register_spokes_command_registers_the_three_spokes(compose):
    from tests.ops.fake_hub import start_fake_hub

    server, fake = await start_fake_hub()
    try:
        command = compose["services"]["register-spokes"]["command"]
        command = [server.address if arg == "hub:50050" else arg for arg in command]
        command[0] = sys.executable
        done = await asyncio.to_thread(
            subprocess.run, command, capture_output=True, text=True, cwd=ROOT, timeout=60
        )
        assert done.returncode == 0, done.stderr
        assert sorted(fake.clusters) == sorted(SPOKES)
        assert {c.zone for c in fake.clusters.values()} == {"KR", "JP-TK", "CN"}
    finally:
        await server.stop(0)


def test_dockerfile_dependency_step_lists_the_project_dependencies(tmp_path):
    [line] = [line for line in _dockerfile() if "tomllib" in line]
    command = line.removeprefix("RUN ").split(" > requirements.txt")[0]
    assert command.startswith("python -c ")
    command = shlex.quote(sys.executable) + command.removeprefix("python")
    for name in ("pyproject.toml", "constraints.txt"):
        (tmp_path / name).write_bytes((ROOT / name).read_bytes())
    done = subprocess.run(["sh", "-c", command], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    import tomllib

    expected = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert done.stdout.split() == expected
    assert "grpcio" in expected and "pytest" not in done.stdout, "runtime dependencies only"
