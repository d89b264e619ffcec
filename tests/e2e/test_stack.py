"""The whole system as local processes: the demo workload end to end, and every dashboard query answered by a
real Prometheus scraping the running stack."""

import io
import os
import subprocess
import sys
import time

import pytest
from rich.console import Console

from services.launcher.__main__ import DEMO_SPEEDUP, _scheduler_env
from services.launcher.demo import run_demo
from services.launcher.stack import ROOT, Stack, StackConfig
from tests.e2e.prometheus import Prometheus
from tests.ops.promql import dashboard_queries, scrape_config


def test_make_demo_runs_to_completion(tmp_path):
    """`make demo`, minus the install step: every job finishes and the carbon saved is printed."""
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "services.launcher", "--demo", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=400,
        cwd=ROOT,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "30/30 succeeded" in result.stdout
    assert "% saved" in result.stdout
    assert elapsed < 400


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    config = StackConfig(
        workdir=tmp_path_factory.mktemp("stack"), clock_speedup=DEMO_SPEEDUP, env=_scheduler_env(DEMO_SPEEDUP)
    )
    running = Stack(config).start()
    yield running
    running.stop()


def test_every_dashboard_query_returns_data(stack, tmp_path):
    jobs = {
        "hub": [stack.services["hub"].metrics_address],
        "carbon": [stack.services["carbon"].metrics_address],
        "dispatcher": [stack.services["dispatcher"].metrics_address],
        "optimizer": [p.metrics_address for p in stack.optimizers],
    }
    prometheus = Prometheus(tmp_path, scrape_config(jobs)).start()
    try:
        # Every target scraped once before the workload starts, so rates and histograms see its activity.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            targets = prometheus.targets_up()
            if len(targets) == 4 and set(targets.values()) == {"up"}:
                break
            time.sleep(0.2)
        assert len(targets) == 4 and set(targets.values()) == {"up"}, targets
        out = io.StringIO()
        assert run_demo(stack.hub_address, Console(file=out, width=120)) == 0, out.getvalue()[-3000:]
        # Poll all of them against one deadline: the last scrapes of the workload may still be arriving.
        missing = dashboard_queries(with_variables=True)
        deadline = time.monotonic() + 30
        while missing and time.monotonic() < deadline:
            missing = [q for q in missing if not Prometheus.has_number(prometheus.query(q.expr))]
            time.sleep(0.5)
        missing = [q.where for q in missing]
        assert missing == [], "dashboard queries without data:\n" + "\n".join(missing)
    finally:
        prometheus.stop()


def test_emissions_never_exceed_the_carbon_agnostic_counterfactual(stack):
    import grpc

    from caspian.v1 import hub_pb2, hub_pb2_grpc

    with grpc.insecure_channel(stack.hub_address) as channel:
        stats = hub_pb2_grpc.HubServiceStub(channel).GetStats(hub_pb2.GetStatsRequest(), timeout=10)
    assert stats.counterfactual_gco2 > 0
    assert stats.emitted_gco2 <= stats.counterfactual_gco2
    assert stats.avoided_gco2 == pytest.approx(stats.counterfactual_gco2 - stats.emitted_gco2, rel=1e-6)


def test_the_demo_headline_counts_only_jobs_that_ran_and_equals_the_hub_totals(stack):
    import grpc

    from caspian.v1 import hub_pb2, hub_pb2_grpc
    from services.launcher.demo import DEMO_JOBS, _fetch_all, headline

    ids = {f"demo-{i:03d}" for i in range(DEMO_JOBS)}
    with grpc.insecure_channel(stack.hub_address) as channel:
        stub = hub_pb2_grpc.HubServiceStub(channel)
        jobs = _fetch_all(stub, ids, ())
        if not jobs:  # run alone: the dashboard test has not run the demo on this stack
            out = io.StringIO()
            run_demo(stack.hub_address, Console(file=out, width=120))
            jobs = _fetch_all(stub, ids, ())
        stats = stub.GetStats(hub_pb2.GetStatsRequest(), timeout=10)
    head = headline(jobs)
    assert head.ran == sum(j.status.HasField("started_at") for j in jobs) > 0
    assert head.emitted == pytest.approx(stats.emitted_gco2, rel=1e-9)
    assert head.agnostic == pytest.approx(stats.counterfactual_gco2, rel=1e-9)
    # Every job that ran was accounted with its saving split, and the two parts add up to the saving.
    assert all(
        j.status.carbon.HasField("spatial_saving_gco2") for j in jobs if j.status.HasField("started_at")
    )
    assert head.spatial + head.temporal == pytest.approx(head.agnostic - head.emitted, rel=1e-6, abs=1e-6)
    assert all(j.status.baseline_cluster and j.status.HasField("baseline_start") for j in jobs)


def test_the_demo_output_fits_80_columns_marks_synthetic_zones_and_agrees_with_the_hub(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "services.launcher", "--demo", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=400,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "80"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = [line for line in result.stdout.splitlines() if line.startswith("demo-")]
    assert len(table) == 30
    assert all(len(line) <= 80 and "…" not in line for line in table), table
    assert "synthetic grid data (CN)" in result.stdout
    assert "Over the 30 jobs that ran" in result.stdout and "(the same)" in result.stdout
    assert "by moving them in time" in result.stdout
