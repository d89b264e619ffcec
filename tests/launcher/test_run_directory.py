"""State between runs: one stack per run directory, nothing written by a start that is refused, the demo in
its own directory, and a restart that resumes the simulated clock (and says so)."""

from __future__ import annotations

import json
import os
import socket
from datetime import UTC, datetime

import pytest

from services.launcher.__main__ import build_parser, default_workdir
from services.launcher.procs import ServiceProcess, StartupFailed
from services.launcher.rundir import RunDirectory, StartRefused, busy_ports
from tests.launcher.support import Launcher, run_launcher


def _snapshot(directory) -> dict[str, object]:
    """What a refused start could clobber (the running stack itself keeps writing its database and spokes)."""
    kubeconfig = directory / "kubeconfig"
    stat = kubeconfig.stat()
    return {
        "kubeconfig": (stat.st_ino, stat.st_mtime_ns, kubeconfig.read_bytes()),
        "hub.db": (directory / "hub.db").stat().st_ino,
        "files": sorted(p.name for p in directory.iterdir() if not p.name.startswith("clock.")),
    }


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("run")
    launcher = Launcher("--ephemeral-ports", "--workdir", str(workdir))
    try:
        launcher.wait_for("all services up")
        yield launcher, workdir
    finally:
        launcher.stop()


def test_a_second_start_on_a_running_directory_is_refused_in_one_line(running):
    launcher, workdir = running
    before = _snapshot(workdir)
    result = run_launcher("--ephemeral-ports", "--workdir", str(workdir))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"pid {launcher.proc.pid}" in lines[0]
    assert "--ephemeral-ports" in lines[0] and "--workdir" in lines[0]
    assert "Traceback" not in result.stdout + result.stderr
    assert _snapshot(workdir) == before


def test_the_demo_beside_a_running_stack_keeps_its_database(running):
    launcher, workdir = running
    db = workdir / "hub.db"
    inode = db.stat().st_ino
    # Its own directory by default ...
    assert default_workdir(demo=True) != default_workdir(demo=False)
    # ... and pointed at the running stack's directory, refused before it deletes anything.
    result = run_launcher("--demo", "--workdir", str(workdir))
    assert result.returncode == 1, result.stdout[-2000:]
    assert len(result.stderr.strip().splitlines()) == 1 and "in use" in result.stderr
    assert db.exists() and db.stat().st_ino == inode
    assert launcher.proc.poll() is None


def test_each_service_logs_to_a_file_in_the_run_directory(running):
    _, workdir = running
    logs = workdir / "logs"
    names = {p.name for p in logs.glob("*.log")}
    assert {"hub.log", "carbon.log", "optimizer.log", "dispatcher.log", "spoke-carbon-kr.log"} <= names
    first = (logs / "hub.log").read_text().splitlines()[0]
    assert json.loads(first)["service"] == "hub"


def test_without_a_terminal_there_is_no_live_view_but_a_line_per_cycle(running):
    launcher, _ = running
    line = launcher.wait_for("cycle ", timeout=60)
    assert "considered" in line and "\x1b[" not in line


def test_a_restart_resumes_the_simulated_clock_and_says_so(tmp_path):
    first = Launcher("--ephemeral-ports", "--no-view", "--workdir", str(tmp_path))
    try:
        assert "fresh run" in first.wait_for("starting CASPIAN")
        first.wait_for("all services up")
        first.wait_for("cycle ", timeout=60)
    finally:
        assert first.stop() == 0
    saved = datetime.fromisoformat(json.loads((tmp_path / "clock.json").read_text())["sim_now"])
    assert saved > datetime.fromisoformat("2023-06-01T00:00:00+00:00")
    second = Launcher("--ephemeral-ports", "--no-view", "--workdir", str(tmp_path))
    try:
        line = second.wait_for("starting CASPIAN")
        assert "resuming" in line and saved.strftime("%Y-%m-%dT%H:%M:%SZ") in line
        second.wait_for("all services up")
    finally:
        second.stop()
    # Turning the clock back over a kept database is refused; --fresh starts over.
    back = run_launcher("--ephemeral-ports", "--workdir", str(tmp_path), "--start", "2023-06-01T00:00:00Z")
    assert back.returncode == 1 and "--fresh" in back.stderr and len(back.stderr.strip().splitlines()) == 1


def test_fresh_forgets_the_previous_run(tmp_path):
    rundir = RunDirectory(tmp_path)
    (tmp_path / "hub.db").write_bytes(b"")
    (tmp_path / "spoke-carbon-kr.json").write_text("{}")
    rundir.save_clock(datetime.fromisoformat("2023-06-02T00:00:00+00:00"))
    rundir.clear_state()
    assert not rundir.has_state() and rundir.last_time() is None
    assert list(tmp_path.glob("spoke-*.json")) == []


def test_the_lock_names_the_holder(tmp_path):
    holder = RunDirectory(tmp_path)
    holder.lock()
    try:
        with pytest.raises(StartRefused, match=f"pid {os.getpid()}"):
            RunDirectory(tmp_path).lock()
    finally:
        holder.unlock()
    RunDirectory(tmp_path).lock()  # free again once released


def test_a_port_clash_is_found_before_start_and_is_one_line_when_it_happens():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert busy_ports({"hub": port}) == [f"hub {port}"]
        with pytest.raises(StartupFailed) as failure:
            ServiceProcess("services.carbon", env={"CASPIAN_CARBON_PORT": str(port)}).start()
    summary = failure.value.summary
    assert "\n" not in summary and str(port) in summary and "Traceback" not in summary


def test_the_parser_documents_no_view_and_fresh():
    text = build_parser().format_help()
    assert "--no-view" in text and "--fresh" in text and "--auth" in text


def test_the_wall_clock_runs_every_service_on_real_time(tmp_path):
    import grpc

    from caspian.v1 import hub_pb2, hub_pb2_grpc
    from services.common.timeconv import from_timestamp

    launcher = Launcher("--wall-clock", "--ephemeral-ports", "--no-view", "--workdir", str(tmp_path))
    try:
        assert "wall clock" in launcher.wait_for("starting CASPIAN")
        launcher.wait_for("all services up")
        address = launcher.wait_for("  hub ").split()[1]
        with grpc.insecure_channel(address) as channel:
            stats = hub_pb2_grpc.HubServiceStub(channel).GetStats(hub_pb2.GetStatsRequest(), timeout=10)
        assert abs((from_timestamp(stats.now) - datetime.now(UTC)).total_seconds()) < 60
    finally:
        assert launcher.stop() == 0


def test_a_start_that_fails_leaves_the_directory_as_it_was(tmp_path):
    import subprocess
    import sys

    from services.launcher.stack import ROOT

    env = {**os.environ, "CASPIAN_HUB_SHUTDOWN_GRACE_SECONDS": "x"}  # the hub, started last, refuses it
    result = subprocess.run(
        [sys.executable, "-m", "services.launcher", "--ephemeral-ports", "--workdir", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "services.hub did not start" in lines[0] and "SHUTDOWN_GRACE" in lines[0], (
        result.stderr
    )
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["logs", "run.lock"], left  # the logs say why; no database, spoke state or kubeconfig
