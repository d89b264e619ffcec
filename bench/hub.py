"""`make bench-hub`: the hub's submission throughput and one scheduling cycle over 5,000 pending jobs.

1. Unary SubmitAppWrapper on the hub process, beside an empty grpc.aio handler of the same method (it answers
   with the AppWrapper it got) in its own process: the same client harness (asyncio tasks on a few channels,
   every call timed), in the same run, alternating echo and hub rounds. The hub writes with
   synchronous=FULL: every answer is durable.
2. Bulk SubmitAppWrappers: batches of 1,000 on one client stream, timed from the first byte to the single
   answer that comes once all are durable. The batches are built before the clock starts.
3. One cycle over 5,000 pending jobs, in-process (no network): the hub's Scheduler on a SQLite store on disk,
   carbon forecasts from the bundled Electricity Maps 2023 traces (KR, JP-TK, US-CAL-CISO), the optimizer's
   own solve() in-process (services/hub/local_optimizer.py, policy caspian, the service's default settings),
   and a dispatcher that answers at once. A second cycle re-plans the same jobs (warm: the plan exists).

Writes bench/results/hub.json. BENCH_QUICK=1 runs shorter rounds (well under a minute).
The hub and echo processes log at WARNING, so per-RPC log lines are not part of the measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import importlib
import json
import math
import os
import platform
import random
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
from prometheus_client import CollectorRegistry

from bench.stats import percentile
from caspian.v1 import common_pb2, hub_pb2, hub_pb2_grpc
from services.common.clock import ManualClock
from services.common.timeconv import to_duration, to_timestamp
from services.hub.clusters import ClusterRegistry
from services.hub.inprocess import HourlyCarbon, InstantDispatcher
from services.hub.local_optimizer import LocalOptimizer
from services.hub.metrics import HubMetrics
from services.hub.scheduling import Scheduler, SchedulerConfig
from services.hub.settings import HubSettings
from services.hub.store import NewAppWrapper, SqliteStore
from services.hub.validation import Limits
from services.launcher.procs import ServiceProcess
from services.optimizer.problem import Policy

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "hub.json"
BACKLOG_RESULTS = ROOT / "bench" / "results" / "hub_backlog.json"
CARBON = ROOT / "data" / "carbon" / "electricitymaps"
WORKLOAD = ROOT / "data" / "workloads" / "pai_1k.csv"
GIB = 1 << 30
CLUSTERS = (("carbon-kr", "KR"), ("carbon-jp", "JP-TK"), ("carbon-us", "US-CAL-CISO"))
QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0", "false")
SUBMIT_SERVICE = "/caspian.v1.HubService/SubmitAppWrapper"


# -- the empty handler ---------------------------------------------------------------------------------------


class Echo(hub_pb2_grpc.HubServiceServicer):
    async def SubmitAppWrapper(self, request, context):
        return hub_pb2.SubmitAppWrapperResponse(app_wrapper=request.app_wrapper, created=True)


async def serve_echo() -> None:
    server = grpc.aio.server()
    hub_pb2_grpc.add_HubServiceServicer_to_server(Echo(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"READY service=echo grpc=127.0.0.1:{port} metrics=off", flush=True)
    await server.wait_for_termination()


# -- the client harness --------------------------------------------------------------------------------------


def request_template() -> hub_pb2.SubmitAppWrapperRequest:
    now = datetime.now(UTC)
    return hub_pb2.SubmitAppWrapperRequest(
        app_wrapper=common_pb2.AppWrapper(
            tenant="bench",
            namespace="default",
            template=common_pb2.JobTemplate(
                image="ghcr.io/caspian/train:1.4",
                command=["python", "train.py"],
                args=["--epochs", "3"],
                env=[common_pb2.EnvVar(name="MODE", value="bench")],
                resources=common_pb2.Resources(cpu_millis=2000, memory_bytes=4 * GIB),
                expected_runtime=to_duration(3600),
            ),
            deadline=to_timestamp(now + timedelta(hours=12)),
            labels={"workload": "bench"},
        )
    )


async def drive(address: str, prefix: str, seconds: float, concurrency: int, channels: int = 4) -> dict:
    """Unary calls from `concurrency` tasks for `seconds` (after a short warm-up); rps and latency."""
    template = request_template()
    chans = [grpc.aio.insecure_channel(address) for _ in range(channels)]
    stubs = [hub_pb2_grpc.HubServiceStub(c) for c in chans]
    counter = iter(range(10**9))
    latencies: list[float] = []
    warmup = min(1.0, seconds / 3)
    loop_start = time.perf_counter()
    measure_from = loop_start + warmup
    measure_to = measure_from + seconds

    async def worker(k: int) -> None:
        stub = stubs[k % len(stubs)]
        while True:
            request = hub_pb2.SubmitAppWrapperRequest()
            request.CopyFrom(template)
            request.app_wrapper.id = f"{prefix}-{next(counter)}"
            began = time.perf_counter()
            if began >= measure_to:
                return
            await stub.SubmitAppWrapper(request, timeout=30)
            ended = time.perf_counter()
            if began >= measure_from and ended <= measure_to:
                latencies.append(ended - began)

    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    for c in chans:
        await c.close()
    return {
        "rps": len(latencies) / seconds,
        "p50_ms": 1000 * percentile(latencies, 50),
        "p99_ms": 1000 * percentile(latencies, 99),
        "calls": len(latencies),
    }


async def register_clusters(address: str) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = hub_pb2_grpc.HubServiceStub(channel)
        for name, zone in CLUSTERS:
            cluster = common_pb2.ClusterInfo(
                name=name,
                zone=zone,
                capacity=common_pb2.Resources(cpu_millis=1_000_000, memory_bytes=4096 * GIB),
            )
            await stub.RegisterCluster(hub_pb2.RegisterClusterRequest(cluster=cluster), timeout=10)


async def bulk(address: str, total: int, batch: int = 1000, prefix: str = "bulk") -> dict:
    template = request_template()
    batches = []
    for start in range(0, total, batch):
        request = hub_pb2.SubmitAppWrappersRequest()
        for i in range(start, min(total, start + batch)):
            item = request.items.add()
            item.CopyFrom(template)
            item.app_wrapper.id = f"{prefix}-{i}"
        batches.append(request)
    async with grpc.aio.insecure_channel(
        address, options=[("grpc.max_receive_message_length", 256 << 20)]
    ) as channel:
        stub = hub_pb2_grpc.HubServiceStub(channel)
        began = time.perf_counter()
        response = await stub.SubmitAppWrappers(iter(batches), timeout=600)
        elapsed = time.perf_counter() - began
    if response.accepted != total:
        raise RuntimeError(f"bulk accepted {response.accepted} of {total}: {response.results[:3]}")
    return {"rps": total / elapsed, "seconds": elapsed, "items": total}


def hub_env(**extra: str) -> dict[str, str]:
    """The hub's settings for the submission benchmarks: no scheduler, no other service, WARNING logs; `extra`
    adds to them (the database path, a replica name)."""
    nowhere = "127.0.0.1:9"  # the hub needs no other service for submissions
    return {
        "CASPIAN_HUB_PORT": "0",
        "CASPIAN_HUB_METRICS_PORT": "-1",
        "CASPIAN_HUB_SCHEDULER_ENABLED": "false",
        "CASPIAN_HUB_LOG_LEVEL": "WARNING",
        "CASPIAN_HUB_CARBON_ADDRESS": nowhere,
        "CASPIAN_HUB_OPTIMIZER_ADDRESS": nowhere,
        "CASPIAN_HUB_DISPATCHER_ADDRESS": nowhere,
        "CASPIAN_HUB_WATCH_BACKOFF_INITIAL_SECONDS": "30",
        "CASPIAN_CLOCK_MODE": "wall",
        **extra,
    }


def start_processes(db_path: str) -> tuple[ServiceProcess, ServiceProcess]:
    hub = ServiceProcess("services.hub", env=hub_env(CASPIAN_HUB_DB_PATH=db_path)).start()
    echo = ServiceProcess("bench.hub", args=("--echo-server",)).start()
    return hub, echo


# -- one cycle over 5,000 jobs, in-process ------------------------------------------------------------------


def trace_carbon(zones: dict[str, str]) -> HourlyCarbon:
    """Forecasts and history straight from the hourly traces (a perfect forecast)."""
    return HourlyCarbon.of_table({zone: dict(load_trace(zone)) for zone in zones.values()})


def load_trace(zone: str) -> list[tuple[float, float]]:
    rows = []
    with open(CARBON / f"{zone}_2023_hourly.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            t = datetime.strptime(row["Datetime (UTC)"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()
            rows.append((t, float(row["Carbon Intensity gCO₂eq/kWh (direct)"])))
    return rows


class TimedOptimizer:
    def __init__(self, inner):
        self.inner = inner
        self.seconds = 0.0

    async def solve(self, problem, options):
        began = time.perf_counter()
        try:
            return await self.inner.solve(problem, options)
        finally:
            self.seconds = time.perf_counter() - began


def pending_jobs(count: int, now: datetime, seed: int = 7) -> list[common_pb2.AppWrapper]:
    """Jobs drawn from the PAI trace: runtime and cores; a fifth already waiting, the rest arriving over the
    next 12 hours; 4-24 h of slack."""
    rng = random.Random(seed)
    with open(WORKLOAD, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if float(r["length"]) <= 8 * 3600]
    jobs = []
    for i in range(count):
        row = rng.choice(rows)
        runtime = max(60.0, float(row["length"]))
        cores = max(1, int(float(row["cpus"])))
        backlog = rng.random() < 0.2
        earliest = now if backlog else now + timedelta(seconds=rng.uniform(0, 12 * 3600))
        slack = rng.choice((4, 8, 12, 24)) * 3600
        message = common_pb2.AppWrapper(
            id=f"cycle-{i}",
            name=f"cycle-{i}",
            tenant="bench",
            template=common_pb2.JobTemplate(
                image="ghcr.io/caspian/train:1.4",
                resources=common_pb2.Resources(cpu_millis=1000 * cores, memory_bytes=4 * GIB * cores),
                expected_runtime=to_duration(runtime),
            ),
            earliest_start=to_timestamp(earliest),
            deadline=to_timestamp(earliest + timedelta(seconds=runtime + slack)),
        )
        message.status.phase = common_pb2.APP_WRAPPER_PHASE_PENDING
        jobs.append(message)
    return jobs


@contextlib.asynccontextmanager
async def cycle_harness(count: int, config: SchedulerConfig):
    """The hub's Scheduler over `count` pending jobs, in-process: yields (scheduler, clock, optimizer, store)."""
    now = datetime(2023, 6, 1, tzinfo=UTC)
    clock = ManualClock(now)
    clusters = {
        name: common_pb2.ClusterInfo(
            name=name,
            zone=zone,
            kube_context=name,
            job_namespace="default",
            ready=True,
            capacity=common_pb2.Resources(cpu_millis=2_000_000, memory_bytes=8192 * GIB),
            power=common_pb2.PowerModel(watts_per_core=12.0, pue=1.2),
        )
        for name, zone in CLUSTERS
    }
    # The hub imports the optimizer's solve() (and numpy) at its first in-process solve, once per process
    # (0.12 s): not a cost of any cycle, so not of the timed one.
    importlib.import_module("services.optimizer.solve")
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(str(Path(tmp) / "hub.db"), now=clock.now, synchronous="FULL")
        await store.open()
        try:
            jobs = pending_jobs(count, now)
            await store.insert_app_wrappers([NewAppWrapper(j, b"bench") for j in jobs])
            for info in clusters.values():
                await store.save_cluster(info)
            registry = ClusterRegistry(store, Limits())
            await registry.load()
            optimizer = TimedOptimizer(LocalOptimizer())
            scheduler = Scheduler(
                store=store,
                clock=clock,
                carbon=trace_carbon(dict(CLUSTERS)),
                optimizer=optimizer,
                dispatcher=InstantDispatcher(),
                clusters=registry,
                config=config,
                metrics=HubMetrics.create(CollectorRegistry()),
            )
            yield scheduler, clock, optimizer, store
        finally:
            await store.close()


async def cycle_bench(count: int, policy: Policy = Policy.CASPIAN) -> dict:
    config = SchedulerConfig(slot_seconds=900, horizon_slots=96, policy=policy)
    async with cycle_harness(count, config) as (scheduler, clock, optimizer, _store):
        began = time.perf_counter()
        first = await scheduler.tick()
        first_s = time.perf_counter() - began
        first_solve = optimizer.seconds
        clock.advance(900)
        began = time.perf_counter()
        second = await scheduler.tick()
        second_s = time.perf_counter() - began
    if first.outcome == "error" or second.outcome == "error":
        raise RuntimeError(f"cycle failed: {first.notes} {second.notes}")
    return {
        "first_s": first_s,
        "first_solve_s": first_solve,
        "first_planned": first.planned,
        "first_unplaced": first.unplaced,
        "first_dispatched": first.dispatched,
        "replan_s": second_s,
        "replan_solve_s": optimizer.seconds,
        "replan_considered": second.considered,
    }


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def backlog_bench(count: int, max_cycles: int) -> dict:
    """A backlog of `count` pending jobs: cycles 15 minutes apart until no window is left for the next cycle
    and no job is Pending (or `max_cycles`), with the hub's default solve deadline and MAX_JOBS (HubSettings)."""
    defaults = HubSettings()
    config = SchedulerConfig(
        slot_seconds=900,
        horizon_slots=96,
        solve_deadline_seconds=defaults.optimizer_timeout_seconds,
        solve_max_jobs=defaults.optimizer_max_jobs,
    )
    began = time.perf_counter()
    async with cycle_harness(count, config) as (scheduler, clock, optimizer, store):
        setup_s = time.perf_counter() - began
        cycles = []
        for k in range(max_cycles):
            if k:
                clock.advance(900)
            began = time.perf_counter()
            report = await scheduler.tick()
            seconds = time.perf_counter() - began
            if report.outcome == "error":
                raise RuntimeError(f"backlog cycle {k} failed: {report.notes}")
            phases = await store.phase_counts()
            deferred = any("wait for the next cycle" in note for note in report.notes)
            cycles.append(
                {
                    "seconds": round(seconds, 3),
                    "considered": report.considered,
                    "planned": report.planned,
                    "unplaced": report.unplaced,
                    "dispatched": report.dispatched,
                    "windows_deferred": deferred,
                    "notes": [n for n in report.notes if "window" in n],
                    "phases": {common_pb2.AppWrapperPhase.Name(p): n for p, n in sorted(phases.items())},
                    "peak_rss_mib": round(peak_rss_mib(), 1),
                }
            )
            print(f"backlog cycle {k}: {cycles[-1]}", file=sys.stderr, flush=True)
            if not deferred and not phases.get(common_pb2.APP_WRAPPER_PHASE_PENDING):
                break
    return {
        "backlog_jobs": count,
        "max_jobs_per_request": config.solve_max_jobs,
        "solve_deadline_seconds": config.solve_deadline_seconds,
        "windows_first_cycle": math.ceil(count / config.solve_max_jobs),
        "setup_s": round(setup_s, 3),
        "first_cycle_s": cycles[0]["seconds"],
        "first_cycle_planned": cycles[0]["planned"],
        "cycles_run": len(cycles),
        "all_windows_solved": not cycles[-1]["windows_deferred"],
        "cycle_seconds": [c["seconds"] for c in cycles],
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "cycles": cycles,
    }


# -- main -----------------------------------------------------------------------------------------------------


async def run() -> dict:
    seconds = 3.0 if QUICK else 10.0
    rounds = 1 if QUICK else 5
    concurrency = 64
    with tempfile.TemporaryDirectory() as tmp:
        hub, echo = start_processes(str(Path(tmp) / "hub.db"))
        try:
            await register_clusters(hub.address)
            echo_runs, submit_runs = [], []
            for r in range(rounds):
                echo_runs.append(await drive(echo.address, f"echo{r}", seconds, concurrency))
                submit_runs.append(await drive(hub.address, f"unary{r}", seconds, concurrency))
            bulk_result = await bulk(hub.address, 20_000 if QUICK else 100_000)
        finally:
            hub.terminate()
            echo.terminate()
    cycle = await cycle_bench(5000)
    # The same cycle with the greedy heuristic the hub falls back to: comparable with the runs before the
    # optimizer placed every job in the hub's benchmark (they used the hub's own greedy placement).
    greedy = await cycle_bench(5000, Policy.GREEDY_CARBON)

    def median(runs, key):
        return statistics.median(run[key] for run in runs)

    echo_rps = median(echo_runs, "rps")
    submit_rps = median(submit_runs, "rps")
    return {
        "echo_rps": round(echo_rps, 1),
        "submit_rps": round(submit_rps, 1),
        "submit_p50_ms": round(median(submit_runs, "p50_ms"), 3),
        "submit_p99_ms": round(median(submit_runs, "p99_ms"), 3),
        "bulk_rps": round(bulk_result["rps"], 1),
        "cycle_5000_s": round(cycle["first_s"], 3),
        "submit_vs_echo": round(submit_rps / echo_rps, 3),
        "echo_p50_ms": round(median(echo_runs, "p50_ms"), 3),
        "echo_p99_ms": round(median(echo_runs, "p99_ms"), 3),
        "bulk_items": bulk_result["items"],
        "bulk_seconds": round(bulk_result["seconds"], 3),
        "cycle_5000_solve_s": round(cycle["first_solve_s"], 3),
        "cycle_5000_planned": cycle["first_planned"],
        "cycle_5000_unplaced": cycle["first_unplaced"],
        "cycle_5000_dispatched": cycle["first_dispatched"],
        "cycle_5000_replan_s": round(cycle["replan_s"], 3),
        "cycle_5000_replan_considered": cycle["replan_considered"],
        "cycle_5000_replan_solve_s": round(cycle["replan_solve_s"], 3),
        "cycle_5000_greedy_s": round(greedy["first_s"], 3),
        "cycle_5000_greedy_solve_s": round(greedy["first_solve_s"], 3),
        "cycle_5000_greedy_replan_s": round(greedy["replan_s"], 3),
        "setup": {
            "quick": QUICK,
            "rounds": rounds,
            "seconds_per_round": seconds,
            "concurrency": concurrency,
            "client_channels": 4,
            "db_synchronous": "FULL",
            "log_level": "WARNING",
            "cycle_optimizer": "the optimizer's solve(), in-process, policy caspian (and greedy_carbon)",
            "cycle_carbon": "Electricity Maps 2023 traces KR, JP-TK, US-CAL-CISO, perfect forecast",
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "grpc": grpc.__version__,
            "sqlite": __import__("sqlite3").sqlite_version,
            "measured_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.hub", description=__doc__.splitlines()[0])
    parser.add_argument("--echo-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(RESULTS), help="where to write the JSON results")
    parser.add_argument(
        "--backlog",
        type=int,
        default=int(os.environ.get("BENCH_BACKLOG", "0")),
        help="only the backlog measurement over this many pending jobs (env BENCH_BACKLOG); writes "
        "bench/results/hub_backlog.json",
    )
    parser.add_argument("--backlog-cycles", type=int, default=10, help="at most this many backlog cycles")
    args = parser.parse_args(argv)
    if args.echo_server:
        asyncio.run(serve_echo())
        return 0
    if args.backlog > 0:
        results = asyncio.run(backlog_bench(args.backlog, args.backlog_cycles))
        results["setup"] = {
            "loadavg": Path("/proc/loadavg").read_text().strip(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "command": f"python -m bench.hub --backlog {args.backlog} --backlog-cycles {args.backlog_cycles}",
            "measured_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if args.out == str(RESULTS):
            args.out = str(BACKLOG_RESULTS)
    else:
        results = asyncio.run(run())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    width = max(len(k) for k in results)
    for key, value in results.items():
        if key not in ("setup", "cycles"):
            print(f"{key:<{width}}  {value}")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
