"""Faults of the hub's own database, each against a real hub process (issue 17):
- F10: one AppWrapper row whose record no longer decodes is quarantined and reported; List, Watch, the
  other Gets and the scheduling cycle go on (before: every cycle failed, List/Get/Watch answered INTERNAL);
- F10: a database file that fails `PRAGMA quick_check` is refused at start with one line, never READY;
- F9: a database another process holds locked is refused at start with one line (before: READY, then every
  write failed), and the same file starts once the lock is gone."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime

import grpc
import pytest

from caspian.v1 import hub_pb2, hub_pb2_grpc
from tests.reliability.stacks import submit_bulk
from tests.reliability.support import HubProcess, app_wrapper, metric, scale
from tests.support.sqlitelock import lock_held

T = hub_pb2.WatchEventType
PAGE = 4096


def start_refused(hub: HubProcess, within: float = 60) -> tuple[int, str, str, float]:
    """Start the hub's process on its database as `python -m services.hub` would be: (code, stdout, stderr, s)."""
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "services.hub"],
        env={**hub.env(), "CASPIAN_HUB_LOG_LEVEL": "CRITICAL"},
        capture_output=True,
        text=True,
        timeout=within,
    )
    return done.returncode, done.stdout, done.stderr, time.monotonic() - began


def fill(hub: HubProcess, count: int) -> None:
    hub.register_clusters()
    now = datetime.now(UTC)
    with grpc.insecure_channel(hub.address) as channel:
        stub = hub_pb2_grpc.HubServiceStub(channel)
        submit_bulk(stub, [app_wrapper(id=f"job-{i:06d}", now=now) for i in range(count)])


@pytest.mark.scenario("store: an undecodable AppWrapper row is quarantined, the rest goes on (F10)")
def test_an_undecodable_row_is_quarantined_and_the_rest_goes_on(tmp_path, scenario):
    count = scale(200, 2_000)
    hub = HubProcess(tmp_path).start()
    try:
        fill(hub, count)
        damaged = "job-000007"
        with sqlite3.connect(str(tmp_path / "hub.db"), timeout=10) as conn:  # behind the hub's back
            conn.execute("UPDATE appwrappers SET body = ? WHERE id = ?", (b"\xff\xff\xff\xff", damaged))
        with grpc.insecure_channel(hub.address) as channel:
            stub = hub_pb2_grpc.HubServiceStub(channel)
            summary = stub.TriggerSchedule(hub_pb2.TriggerScheduleRequest(), timeout=120).summary
            listed: list[str] = []
            token = ""
            while True:
                page = stub.ListAppWrappers(
                    hub_pb2.ListAppWrappersRequest(page_size=500, page_token=token), timeout=30
                )
                listed.extend(a.id for a in page.app_wrappers)
                token = page.next_page_token
                if not token:
                    break
            with pytest.raises(grpc.RpcError) as err:
                stub.GetAppWrapper(hub_pb2.GetAppWrapperRequest(id=damaged), timeout=10)
            other = stub.GetAppWrapper(hub_pb2.GetAppWrapperRequest(id="job-000008"), timeout=10)
            watched: list[str] = []
            call = stub.WatchAppWrappers(hub_pb2.WatchAppWrappersRequest(), timeout=30)
            for event in call:
                if event.type == T.WATCH_EVENT_TYPE_BOOKMARK:
                    break
                watched.append(event.app_wrapper.id)
            call.cancel()
            second = stub.TriggerSchedule(hub_pb2.TriggerScheduleRequest(), timeout=120).summary
        failed_cycles = metric(hub.proc.metrics_address, "caspian_schedule_cycles_total", outcome="error")
        quarantined = metric(hub.proc.metrics_address, "caspian_hub_quarantined_records_total")
        internal = metric(hub.proc.metrics_address, "api_requests_total", code="INTERNAL")
        logged = [line for line in hub.proc.log_lines if "quarantined" in line]
        with sqlite3.connect(str(tmp_path / "hub.db"), timeout=10) as conn:
            held = conn.execute("SELECT id, error FROM quarantine").fetchall()
        hub.stop()
        hub.start()  # a restart says, once, that the table holds rows
        warned = [line for line in hub.proc.log_lines if "in quarantine" in line]
        expected = {f"job-{i:06d}" for i in range(count)} - {damaged}
        scenario.lost = len(expected - set(listed))
        scenario.duplicated = len(listed) - len(set(listed))
        scenario.detail.update(
            app_wrappers=count,
            damaged=1,
            failed_cycles=failed_cycles,
            cycle_considered=[summary.considered, second.considered],
            cycle_failed_notes=[n[:120] for n in (*summary.notes, *second.notes) if "cycle failed" in n],
            listed=len(listed),
            watched=len(watched),
            get_damaged=f"{err.value.code().name}: {err.value.details()[:160]}",
            quarantined_metric=quarantined,
            quarantine_rows=[r[0] for r in held],
            log_lines=len(logged),
            restart_warning=bool(warned),
            internal=internal,
        )
        assert failed_cycles == 0, list(summary.notes)
        assert summary.considered == count - 1 and second.considered == count - 1
        assert not [n for n in (*summary.notes, *second.notes) if "cycle failed" in n]
        assert set(listed) == expected and set(watched) == expected
        assert err.value.code() == grpc.StatusCode.DATA_LOSS and damaged in err.value.details()
        assert other.app_wrapper.id == "job-000008"
        assert quarantined == 1 and [r[0] for r in held] == [damaged] and held[0][1]
        assert len(logged) == 1 and warned and internal == 0
    finally:
        hub.stop()


@pytest.mark.scenario("store: a damaged database file is refused at start (F10)")
def test_a_damaged_database_is_refused_at_start_with_one_line(tmp_path, scenario):
    count = scale(2_000, 100_000)
    hub = HubProcess(tmp_path).start()
    try:
        fill(hub, count)
    finally:
        hub.stop()
    path = str(tmp_path / "hub.db")
    with sqlite3.connect(path) as conn:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        began = time.perf_counter()
        sound = conn.execute("PRAGMA quick_check").fetchall()
        check_seconds = time.perf_counter() - began
    # Cells of a page in the middle of the file overwritten: what a torn write or a bad sector leaves.
    with open(path, "r+b") as f:
        f.seek((pages // 2) * PAGE + 1000)
        f.write(b"\x07" * 2000)
    code, stdout, stderr, seconds = start_refused(hub)
    lines = [line for line in stderr.splitlines() if line.strip()]
    scenario.lost, scenario.duplicated = None, None
    scenario.detail.update(
        app_wrappers=count,
        database_pages=pages,
        quick_check_seconds=round(check_seconds, 3),
        exit_code=code,
        stderr_lines=len(lines),
        message=lines[0][:300] if lines else "",
        ready_printed="READY" in stdout,
        seconds_to_refuse=round(seconds, 2),
    )
    assert sound == [("ok",)]
    assert code == 1 and "READY" not in stdout
    assert len(lines) == 1 and lines[0].startswith("hub not started: hub database "), stderr
    assert "refusing to start" in lines[0]


@pytest.mark.scenario("store: a database another process holds locked is refused at start (F9)")
def test_a_locked_database_is_refused_at_start_and_starts_once_free(tmp_path, scenario):
    hub = HubProcess(tmp_path).start()
    try:
        fill(hub, 50)
    finally:
        hub.stop()
    with lock_held(str(tmp_path / "hub.db")):
        code, stdout, stderr, seconds = start_refused(hub)
    lines = [line for line in stderr.splitlines() if line.strip()]
    hub.start()  # the lock gone: the same database serves
    try:
        with grpc.insecure_channel(hub.address) as channel:
            stub = hub_pb2_grpc.HubServiceStub(channel)
            page = stub.ListAppWrappers(hub_pb2.ListAppWrappersRequest(page_size=100), timeout=10)
            created = stub.SubmitAppWrapper(
                hub_pb2.SubmitAppWrapperRequest(app_wrapper=app_wrapper(id="after", now=datetime.now(UTC))),
                timeout=10,
            ).created
    finally:
        hub.stop()
    scenario.lost, scenario.duplicated = 50 - len(page.app_wrappers), 0
    scenario.detail.update(
        exit_code=code,
        stderr_lines=len(lines),
        message=lines[0][:300] if lines else "",
        ready_printed="READY" in stdout,
        seconds_to_refuse=round(seconds, 2),
        served_after_release=len(page.app_wrappers),
        created_after_release=created,
    )
    assert code == 1 and "READY" not in stdout
    assert len(lines) == 1 and "locked by another process" in lines[0], stderr
    assert len(page.app_wrappers) == 50 and created
