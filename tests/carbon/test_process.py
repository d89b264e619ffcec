"""The carbon service as a real process, started from another directory, on the shared sim clock."""

import subprocess
import sys
import time
from datetime import UTC, datetime

import grpc

from caspian.v1 import carbon_pb2, carbon_pb2_grpc
from services.common.timeconv import from_timestamp
from services.launcher.procs import ServiceProcess
from tests.carbon.support import csv_value


def test_process_replays_from_any_cwd_on_the_sim_clock(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {
        "CASPIAN_CARBON_PORT": "0",
        "CASPIAN_CARBON_METRICS_PORT": "-1",
        "CASPIAN_CLOCK_MODE": "sim",
        "CASPIAN_CLOCK_START": "2023-06-01T00:00:00Z",
        "CASPIAN_CLOCK_SPEEDUP": "720",
        "CASPIAN_CLOCK_ANCHOR": str(time.time()),
    }
    proc = ServiceProcess("services.carbon", env=env).start()
    try:
        with grpc.insecure_channel(proc.address) as channel:
            stub = carbon_pb2_grpc.CarbonServiceStub(channel)
            response = stub.GetIntensity(carbon_pb2.GetIntensityRequest(zone="KR"), timeout=10)
        hour = from_timestamp(response.point.time)
        assert datetime(2023, 6, 1, tzinfo=UTC) <= hour < datetime(2023, 6, 3, tzinfo=UTC)
        assert response.point.gco2_per_kwh == csv_value("KR", hour)
    finally:
        assert proc.terminate() == 0
    assert any('"msg":"stopped"' in line for line in proc.log_lines)


def test_bad_zone_map_stops_the_process_with_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "services.carbon"],
        env={"PATH": "", "CASPIAN_CARBON_ZONES": "KR=teleport"},
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "CASPIAN_CARBON_ZONES" in lines[0], result.stderr
