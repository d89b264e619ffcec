"""The demo's figures and the live view, on AppWrappers and stats built here (the stack tests in tests/e2e
run them against real services)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rich.console import Console

from caspian.v1 import common_pb2, hub_pb2
from services.common.timeconv import to_timestamp
from services.launcher.demo import demo_workload, headline, placements_table
from services.launcher.view import Snapshot, cycle_line, render

NOW = datetime(2023, 6, 1, tzinfo=UTC)


def _ran(job: common_pb2.AppWrapper, actual: float, agnostic: float, cluster: str = "carbon-jp") -> None:
    job.status.phase = common_pb2.APP_WRAPPER_PHASE_SUCCEEDED
    job.status.target_cluster = cluster
    job.status.started_at.CopyFrom(to_timestamp(NOW + timedelta(hours=1)))
    job.status.finished_at.CopyFrom(to_timestamp(NOW + timedelta(hours=2)))
    job.status.carbon.actual_gco2 = actual
    job.status.carbon.counterfactual_gco2 = agnostic
    job.status.baseline_cluster = "carbon-cn"
    job.status.baseline_start.CopyFrom(to_timestamp(NOW + timedelta(minutes=30)))
    job.status.carbon.spatial_saving_gco2 = (agnostic - actual) / 4
    job.status.carbon.temporal_saving_gco2 = (agnostic - actual) * 3 / 4


def test_the_headline_compares_only_jobs_that_ran_on_both_sides():
    ran, failed = demo_workload(NOW, count=2)
    _ran(ran, actual=10.0, agnostic=20.0)
    # A job refused before it started keeps its planned counterfactual; it must not count as saved.
    failed.status.phase = common_pb2.APP_WRAPPER_PHASE_FAILED
    failed.status.reason = "dispatch failed: the deadline has passed"
    failed.status.carbon.counterfactual_gco2 = 30.0
    head = headline([ran, failed])
    assert (head.ran, head.emitted, head.agnostic) == (1, 10.0, 20.0)
    assert head.saved_percent == 50.0
    # The saving's split is over the same jobs and adds up to it.
    assert (head.spatial, head.temporal) == (2.5, 7.5)


def test_the_placements_table_fits_80_columns_and_marks_synthetic_clusters():
    jobs = demo_workload(NOW, count=3)
    _ran(jobs[0], 1234.5, 12345.6, cluster="carbon-cn")
    _ran(jobs[1], 1.0, 2.0, cluster="carbon-kr")
    console = Console(width=80, record=True)
    console.print(placements_table(jobs, NOW, {"carbon-cn"}))
    text = console.export_text()
    rows = [line for line in text.splitlines() if line.startswith("demo-")]
    assert len(rows) == 3 and all("…" not in row for row in rows), text
    assert "carbon-cn*" in rows[0] and "carbon-kr*" not in rows[1]
    assert "+1:00" in rows[0]  # started an hour after submission
    # Where and when the carbon-agnostic baseline would have run it: carbon-cn (synthetic) at +0:30.
    assert rows[1].count("carbon-cn*") == 1 and "+0:30" in rows[1]
    assert rows[2].split()[-3:] == ["-", "-", "0.0"]  # never placed: no baseline


def _snapshot(notes=("carbon-blind: forecasts missing or too old",)) -> Snapshot:
    stats = hub_pb2.GetStatsResponse(
        phases=[hub_pb2.PhaseCount(phase=common_pb2.APP_WRAPPER_PHASE_RUNNING, count=2)],
        last_cycle=hub_pb2.CycleSummary(
            cycle=7, considered=3, planned=2, dispatched=1, carbon_blind=True, notes=list(notes)
        ),
    )
    stats.now.CopyFrom(to_timestamp(NOW))
    stats.last_cycle.started_at.CopyFrom(to_timestamp(NOW))
    clusters = [
        common_pb2.ClusterInfo(name=name, zone=zone, ready=True)
        for name, zone in (("carbon-kr", "KR"), ("carbon-jp", "JP-TK"), ("carbon-cn", "CN"))
    ]
    return Snapshot(stats, clusters, {}, synthetic={"CN"})


def test_the_live_view_shows_the_last_cycle_and_whole_cluster_names_at_80_columns():
    console = Console(width=80, record=True)
    console.print(render(_snapshot()))
    text = console.export_text()
    for name in ("carbon-kr", "carbon-jp", "carbon-cn"):
        assert name in text
    assert "carbon-…" not in text
    assert "cycle 7" in text and "carbon-blind" in text and "forecasts missing" in text
    assert "CN*" in text and "synthetic" in text
    assert "UNSPECIFIED" not in text
    assert "Running 2" in text and "Unschedulable 0" in text and "…" not in text


def test_a_cycle_line_is_plain_text_for_a_log():
    line = cycle_line(_snapshot().stats)
    assert line.startswith("cycle 7 at 06-01 00:00: 3 considered, 2 planned, 1 dispatched")
    assert "no solve" in line and "running=2" in line
