"""The whole system as local processes: the demo workload end to end, and every dashboard query answered by a
real Prometheus scraping the running stack."""

import io
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
        timeout=180,
        cwd=ROOT,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "30/30 succeeded" in result.stdout
    assert "% saved" in result.stdout
    assert elapsed < 180


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
        missing = [q for q in dashboard_queries()]
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
