"""`make demo`: a sample of the bundled PAI trace (data/workloads/pai_1k.csv) submitted to a running stack,
followed to completion, then a table of placements and the carbon saved.

The sample is derived from the trace, not replayed verbatim, so that it finishes in a few minutes: the first
DEMO_JOBS jobs no longer than MAX_RUNTIME_H hours keep their order, length and CPUs; their arrivals are
compressed into the first ARRIVAL_WINDOW_H simulated hours, and each job may finish up to SLACK_H hours later
than it could at the earliest.
"""

from __future__ import annotations

import csv
import pathlib
import time
from datetime import datetime, timedelta

import grpc
from rich.console import Console
from rich.table import Table

from caspian.v1 import common_pb2, hub_pb2, hub_pb2_grpc
from services.common.timeconv import from_timestamp, to_duration, to_timestamp

ROOT = pathlib.Path(__file__).resolve().parents[2]
TRACE = ROOT / "data" / "workloads" / "pai_1k.csv"
DEMO_JOBS = 30
MAX_RUNTIME_H = 3.0
ARRIVAL_WINDOW_H = 2.0
SLACK_H = 8.0
TERMINAL = {
    common_pb2.APP_WRAPPER_PHASE_SUCCEEDED,
    common_pb2.APP_WRAPPER_PHASE_FAILED,
    common_pb2.APP_WRAPPER_PHASE_CANCELLED,
    common_pb2.APP_WRAPPER_PHASE_UNSCHEDULABLE,
}


def demo_workload(now: datetime, count: int = DEMO_JOBS) -> list[common_pb2.AppWrapper]:
    with open(TRACE, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if float(r["length"]) <= MAX_RUNTIME_H * 3600][:count]
    last_arrival = max(float(r["arrival_time"]) for r in rows) or 1.0
    jobs = []
    for i, row in enumerate(rows):
        arrival = now + timedelta(hours=ARRIVAL_WINDOW_H * float(row["arrival_time"]) / last_arrival)
        runtime = timedelta(seconds=float(row["length"]))
        cpus = int(float(row["cpus"]))
        jobs.append(
            common_pb2.AppWrapper(
                id=f"demo-{i:03d}",
                name=f"pai-{i:03d}",
                tenant="demo",
                namespace="caspian-jobs",
                template=common_pb2.JobTemplate(
                    image="busybox:1.36",
                    command=["sh", "-c", f"sleep {int(runtime.total_seconds())}"],
                    resources=common_pb2.Resources(cpu_millis=1000 * cpus, memory_bytes=cpus * 2 * 1024**3),
                    expected_runtime=to_duration(runtime),
                ),
                earliest_start=to_timestamp(arrival),
                deadline=to_timestamp(arrival + runtime + timedelta(hours=SLACK_H)),
                labels={"workload": "pai-demo"},
            )
        )
    return jobs


def _fetch_all(stub, ids: set[str]) -> list[common_pb2.AppWrapper]:
    found, token = [], ""
    while True:
        page = stub.ListAppWrappers(
            hub_pb2.ListAppWrappersRequest(tenant="demo", page_size=500, page_token=token), timeout=10
        )
        found += [a for a in page.app_wrappers if a.id in ids]
        token = page.next_page_token
        if not token:
            return found


def run_demo(hub_address: str, console: Console, timeout_s: float = 170.0) -> int:
    started = time.monotonic()
    with grpc.insecure_channel(hub_address) as channel:
        stub = hub_pb2_grpc.HubServiceStub(channel)
        now = from_timestamp(stub.GetStats(hub_pb2.GetStatsRequest(), timeout=10).now)
        jobs = demo_workload(now)
        for job in jobs:
            stub.SubmitAppWrapper(hub_pb2.SubmitAppWrapperRequest(app_wrapper=job), timeout=10)
        ids = {j.id for j in jobs}
        console.print(
            f"submitted {len(jobs)} AppWrappers derived from {TRACE.name}; waiting for them to finish"
        )
        final: list[common_pb2.AppWrapper] = []
        with console.status("running") as status:
            while time.monotonic() - started < timeout_s:
                final = _fetch_all(stub, ids)
                done = sum(a.status.phase in TERMINAL for a in final)
                # The hub accounts a finished job's actual carbon in the cycle after it finishes.
                accounted = sum(_accounted(a) for a in final)
                status.update(f"{done}/{len(ids)} finished, {accounted} accounted")
                if done == len(ids) and accounted == len(ids):
                    break
                time.sleep(0.5)
        stats = stub.GetStats(hub_pb2.GetStatsRequest(), timeout=10)
    console.print(placements_table(final))
    emitted = sum(a.status.carbon.actual_gco2 for a in final)
    agnostic = sum(a.status.carbon.counterfactual_gco2 for a in final)
    succeeded = sum(a.status.phase == common_pb2.APP_WRAPPER_PHASE_SUCCEEDED for a in final)
    saved = 100 * (1 - emitted / agnostic) if agnostic > 0 else 0.0
    console.print(
        f"{succeeded}/{len(ids)} succeeded in {time.monotonic() - started:.0f} s; emitted {emitted:,.0f} gCO2 "
        f"against {agnostic:,.0f} gCO2 carbon-agnostic: {saved:.1f}% saved "
        f"(hub totals: emitted {stats.emitted_gco2:,.0f}, avoided {stats.avoided_gco2:,.0f})",
        soft_wrap=True,
    )
    return 0 if succeeded == len(ids) else 1


def _accounted(app_wrapper: common_pb2.AppWrapper) -> bool:
    if app_wrapper.status.phase != common_pb2.APP_WRAPPER_PHASE_SUCCEEDED:
        return app_wrapper.status.phase in TERMINAL
    return app_wrapper.status.carbon.actual_gco2 > 0


def placements_table(app_wrappers: list[common_pb2.AppWrapper]) -> Table:
    table = Table(title="Placements")
    for column in ("id", "cpus", "runtime", "cluster", "delay", "phase", "gCO2", "agnostic gCO2"):
        table.add_column(column)
    for a in sorted(app_wrappers, key=lambda a: a.id):
        delay = "-"
        if a.status.HasField("started_at"):
            hours = (
                from_timestamp(a.status.started_at) - from_timestamp(a.earliest_start)
            ).total_seconds() / 3600
            delay = f"{hours:.1f} h"
        table.add_row(
            a.id,
            str(a.template.resources.cpu_millis // 1000),
            f"{a.template.expected_runtime.seconds / 3600:.1f} h",
            a.status.target_cluster or "-",
            delay,
            common_pb2.AppWrapperPhase.Name(a.status.phase).removeprefix("APP_WRAPPER_PHASE_").lower(),
            f"{a.status.carbon.actual_gco2:,.1f}",
            f"{a.status.carbon.counterfactual_gco2:,.1f}",
        )
    return table
