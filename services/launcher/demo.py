"""`make demo`: a sample of the bundled PAI trace (data/workloads/pai_1k.csv) submitted to a running stack,
followed to completion, then a table of placements and the carbon saved.

The sample is derived from the trace, not replayed verbatim, so that it finishes in a few minutes: the first
DEMO_JOBS jobs no longer than MAX_RUNTIME_H hours keep their order, length and CPUs; their arrivals are
compressed into the first ARRIVAL_WINDOW_H simulated hours, and each job may finish up to SLACK_H hours later
than it could at the earliest.
"""

from __future__ import annotations

import csv
import math
import pathlib
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

import grpc
from rich import box
from rich.console import Console
from rich.table import Table

from caspian.v1 import carbon_pb2, carbon_pb2_grpc, common_pb2, hub_pb2, hub_pb2_grpc
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


def _fetch_all(stub, ids: set[str], metadata) -> list[common_pb2.AppWrapper]:
    found, token = [], ""
    while True:
        page = stub.ListAppWrappers(
            hub_pb2.ListAppWrappersRequest(tenant="demo", page_size=500, page_token=token),
            timeout=10,
            metadata=metadata,
        )
        found += [a for a in page.app_wrappers if a.id in ids]
        token = page.next_page_token
        if not token:
            return found


@dataclass(frozen=True)
class Headline:
    """Carbon over the jobs that ran and were accounted, both sides over the same jobs."""

    ran: int
    emitted: float
    agnostic: float
    # The saving (agnostic - emitted) in parts (CarbonAccount in common.proto): spatial, the cluster moved at
    # the actual start; temporal, the start moved on the baseline's cluster. Over the jobs the hub split.
    spatial: float = 0.0
    temporal: float = 0.0

    @property
    def saved_percent(self) -> float:
        return 100 * (1 - self.emitted / self.agnostic) if self.agnostic > 0 else 0.0


def headline(app_wrappers: list[common_pb2.AppWrapper]) -> Headline:
    ran = [a for a in app_wrappers if a.status.HasField("started_at") and _accounted(a)]
    split = [a.status.carbon for a in ran if a.status.carbon.HasField("spatial_saving_gco2")]
    return Headline(
        len(ran),
        sum(a.status.carbon.actual_gco2 for a in ran),
        sum(a.status.carbon.counterfactual_gco2 for a in ran),
        sum(c.spatial_saving_gco2 for c in split),
        sum(c.temporal_saving_gco2 for c in split),
    )


def synthetic_zones(carbon_address: str) -> set[str]:
    """Zones whose intensity the carbon service makes up rather than measures."""
    if not carbon_address:
        return set()
    with grpc.insecure_channel(carbon_address) as channel:
        try:
            zones = carbon_pb2_grpc.CarbonServiceStub(channel).ListZones(
                carbon_pb2.ListZonesRequest(), timeout=10
            )
        except grpc.RpcError:
            return set()
    return {z.zone for z in zones.zones if z.synthetic}


def run_demo(
    hub_address: str,
    console: Console,
    timeout_s: float = 600.0,
    carbon_address: str = "",
    metadata: tuple[tuple[str, str], ...] = (),
) -> int:
    started = time.monotonic()
    with grpc.insecure_channel(hub_address) as channel:
        stub = hub_pb2_grpc.HubServiceStub(channel)
        now = from_timestamp(stub.GetStats(hub_pb2.GetStatsRequest(), timeout=10, metadata=metadata).now)
        jobs = demo_workload(now)
        for job in jobs:
            stub.SubmitAppWrapper(
                hub_pb2.SubmitAppWrapperRequest(app_wrapper=job), timeout=10, metadata=metadata
            )
        ids = {j.id for j in jobs}
        console.print(
            f"submitted {len(jobs)} AppWrappers derived from {TRACE.name} at {now:%Y-%m-%d %H:%M} "
            "(simulated); waiting for them to finish"
        )
        final: list[common_pb2.AppWrapper] = []
        with console.status("running") as status:
            while time.monotonic() - started < timeout_s:
                final = _fetch_all(stub, ids, metadata)
                done = sum(a.status.phase in TERMINAL for a in final)
                # The hub accounts a finished job's actual carbon in the cycle after it finishes.
                accounted = sum(_accounted(a) for a in final)
                status.update(f"{done}/{len(ids)} finished, {accounted} accounted")
                if done == len(ids) and accounted == len(ids):
                    break
                time.sleep(0.5)
        stats = stub.GetStats(hub_pb2.GetStatsRequest(), timeout=10, metadata=metadata)
        clusters = stub.ListClusters(hub_pb2.ListClustersRequest(), timeout=10, metadata=metadata).clusters
    synthetic = synthetic_zones(carbon_address)
    synthetic_clusters = {c.name for c in clusters if c.zone in synthetic}
    console.print(placements_table(final, now, synthetic_clusters))
    if synthetic_clusters:
        console.print(
            f"* {', '.join(sorted(synthetic_clusters))}: synthetic grid data ({', '.join(sorted(synthetic))}), "
            "not measured",
            soft_wrap=True,
        )
    for a in sorted(final, key=lambda a: a.id):
        if a.status.phase != common_pb2.APP_WRAPPER_PHASE_SUCCEEDED:
            console.print(f"{a.id} {_phase(a)}: {a.status.reason or 'no reason given'}", soft_wrap=True)
    missing = ids - {a.id for a in final if a.status.phase in TERMINAL}
    if missing:
        console.print(f"{len(missing)} not finished after {timeout_s:.0f} s: {', '.join(sorted(missing))}")
    head = headline(final)
    succeeded = sum(a.status.phase == common_pb2.APP_WRAPPER_PHASE_SUCCEEDED for a in final)
    agree = math.isclose(head.emitted, stats.emitted_gco2, rel_tol=1e-9, abs_tol=1e-6) and math.isclose(
        head.agnostic, stats.counterfactual_gco2, rel_tol=1e-9, abs_tol=1e-6
    )
    console.print(
        f"{succeeded}/{len(ids)} succeeded in {time.monotonic() - started:.0f} s. Over the {head.ran} jobs "
        f"that ran: emitted {head.emitted:,.0f} gCO2 against {head.agnostic:,.0f} gCO2 had the same jobs run "
        f"carbon-agnostic: {head.saved_percent:.1f}% saved ({round(head.spatial):,} g by moving jobs to "
        f"another cluster, {round(head.temporal):,} g by moving them in time). Hub totals (GetStats): emitted "
        f"{stats.emitted_gco2:,.0f}, carbon-agnostic {stats.counterfactual_gco2:,.0f}"
        + (" (the same)" if agree else " (they differ: the hub holds jobs from before this demo)"),
        soft_wrap=True,
    )
    return 0 if succeeded == len(ids) else 1


def _accounted(app_wrapper: common_pb2.AppWrapper) -> bool:
    if app_wrapper.status.phase not in TERMINAL:
        return False
    if not app_wrapper.status.HasField("started_at"):
        return True
    return app_wrapper.status.carbon.actual_gco2 > 0


def _phase(app_wrapper: common_pb2.AppWrapper) -> str:
    return (
        common_pb2.AppWrapperPhase.Name(app_wrapper.status.phase).removeprefix("APP_WRAPPER_PHASE_").lower()
    )


def _offset(ts, origin: datetime) -> str:
    """A simulated time as hours:minutes after the demo's submission."""
    minutes = round((from_timestamp(ts) - origin).total_seconds() / 60)
    return f"+{minutes // 60}:{minutes % 60:02d}"


def placements_table(
    app_wrappers: list[common_pb2.AppWrapper],
    submitted: datetime,
    synthetic_clusters: Collection[str] = frozenset(),
) -> Table:
    table = Table(
        title=f"Placements (times after submission at {submitted:%Y-%m-%d %H:%M}, simulated)",
        box=box.SIMPLE_HEAD,
        padding=(0, 0),
        show_edge=False,
    )
    # Short headers, no padding: the table fits 80 columns with ids and cluster names whole.
    # "base"/"at": where and when the carbon-agnostic baseline would have run it (its gCO2: "agnostic").
    # Each job that did not succeed gets its phase and reason on a line below the table.
    columns = ("id", "cpu", "run", "ready", "cluster", "start", "gCO2", "base", "at", "agnostic")
    for column in columns:
        table.add_column(
            column, no_wrap=True, justify="left" if column in ("id", "cluster", "base") else "right"
        )
    for a in sorted(app_wrappers, key=lambda a: a.id):
        start = _offset(a.status.started_at, submitted) if a.status.HasField("started_at") else "-"
        cluster = a.status.target_cluster or "-"
        base = a.status.baseline_cluster or "-"
        base_at = _offset(a.status.baseline_start, submitted) if a.status.HasField("baseline_start") else "-"
        table.add_row(
            a.id,
            str(a.template.resources.cpu_millis // 1000),
            f"{a.template.expected_runtime.seconds / 3600:.1f}h",
            _offset(a.earliest_start, submitted),
            cluster + ("*" if cluster in synthetic_clusters else ""),
            start,
            f"{a.status.carbon.actual_gco2:,.1f}",
            base + ("*" if base in synthetic_clusters else ""),
            base_at,
            f"{a.status.carbon.counterfactual_gco2:,.1f}",
        )
    return table
