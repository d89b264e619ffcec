"""`make bench-hub-replicas`: unary and bulk submission with 1, 2 and 3 hub replicas on one PostgreSQL.

1. Unary SubmitAppWrapper with N = 1, 2, 3 hub processes on one PostgreSQL database, beside N empty grpc.aio
   handler processes (bench/hub.py's echo server), driven by bench/hub.py's client harness (`drive`): the 64
   calls in flight are split evenly over the N addresses, all in one client process; echo and hub rounds
   alternate. One hub on SQLite (synchronous=FULL) and one echo process beside them, the same way.
2. Bulk SubmitAppWrappers (bench/hub.py's `bulk`) into one hub replica on PostgreSQL.
PostgreSQL runs with fsync and full-page writes on and synchronous_commit on: an acknowledged submission
is on disk. The server is the Debian PostgreSQL 15 in a temporary directory (tests/support/postgres.py).

CPU is read from /proc/<pid>/stat (user + system) before and after each round, for the servers, every
PostgreSQL process, and the client, so the report says where the cores went. The machine may be shared:
/proc/loadavg is recorded before and after.

Writes bench/results/hub_replicas.json. BENCH_QUICK=1 runs shorter rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import grpc

from bench.hub import QUICK, bulk, drive, hub_env, register_clusters
from services.launcher.procs import ServiceProcess
from tests.support.postgres import PostgresServer, _bin_dir, _owned_temp_dir

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "hub_replicas.json"
CONCURRENCY = 64
TICKS = os.sysconf("SC_CLK_TCK")


# -- CPU accounting from /proc --------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def children_of(parent: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(fields[1]) == parent:
                found.append(int(entry))
    return found


def postmaster_pid(server: PostgresServer) -> int:
    return int(Path(server.data_dir, "postmaster.pid").read_text().splitlines()[0])


class CpuMeter:
    """CPU seconds used by groups of processes between `start()` and `stop()`."""

    def __init__(self, groups):
        self.groups = groups  # name -> callable returning the pids of that group now

    def sample(self) -> dict[str, dict[int, float]]:
        return {name: {pid: cpu_seconds(pid) for pid in pids()} for name, pids in self.groups.items()}

    def start(self) -> None:
        self._before = self.sample()

    def stop(self) -> dict[str, float]:
        after = self.sample()
        used = {}
        for name, pids in after.items():
            before = self._before.get(name, {})
            used[name] = sum(value - before.get(pid, 0.0) for pid, value in pids.items())
        return used


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().strip()


# -- processes --------------------------------------------------------------------------------------------------


async def start_hubs(count: int, **env: str) -> list[ServiceProcess]:
    """`count` hubs on one database; the clusters are registered before the second opens (a hub loads them
    when it opens)."""
    hubs: list[ServiceProcess] = []
    for i in range(count):
        hub_vars = hub_env(CASPIAN_HUB_REPLICA_NAME=f"bench-{i}", **env)
        hubs.append(await asyncio.to_thread(ServiceProcess("services.hub", env=hub_vars).start))
        if i == 0:
            await register_clusters(hubs[0].address)
    return hubs


def start_echoes(count: int) -> list[ServiceProcess]:
    return [ServiceProcess("bench.hub", args=("--echo-server",)).start() for _ in range(count)]


def stop_all(procs: list[ServiceProcess]) -> None:
    for proc in procs:
        proc.terminate()


# -- one measurement ----------------------------------------------------------------------------------------------


async def spread(addresses: list[str], prefix: str, seconds: float) -> dict:
    """bench/hub.py's `drive` on every address at once, the calls in flight split evenly."""
    share = CONCURRENCY // len(addresses)
    runs = await asyncio.gather(*(drive(a, f"{prefix}-{i}", seconds, share) for i, a in enumerate(addresses)))
    return {
        "rps": sum(r["rps"] for r in runs),
        # Percentiles of the replicas' own samples: the worst replica's (each drive times its own calls).
        "p50_ms": max(r["p50_ms"] for r in runs),
        "p99_ms": max(r["p99_ms"] for r in runs),
        "calls": sum(r["calls"] for r in runs),
    }


async def measured(meter: CpuMeter, addresses: list[str], prefix: str, seconds: float) -> dict:
    meter.start()
    result = await spread(addresses, prefix, seconds)
    used = meter.stop()
    calls = max(1, result["calls"])
    result["cpu_seconds"] = {name: round(value, 2) for name, value in used.items()}
    result["cpu_us_per_call"] = {name: round(1e6 * value / calls, 1) for name, value in used.items()}
    return result


def median_of(runs: list[dict]) -> dict:
    """The median of each figure over the rounds (CPU per call too)."""
    out = {key: round(statistics.median(r[key] for r in runs), 3) for key in ("rps", "p50_ms", "p99_ms")}
    for key in ("cpu_us_per_call", "cpu_seconds"):
        out[key] = {name: round(statistics.median(r[key][name] for r in runs), 2) for name in runs[0][key]}
    return out


async def compare(hubs, echoes, meter_for, rounds: int, seconds: float, label: str) -> dict:
    echo_runs, hub_runs = [], []
    for r in range(rounds):
        echo_runs.append(
            await measured(meter_for(echoes), [e.address for e in echoes], f"e{label}{r}", seconds)
        )
        hub_runs.append(await measured(meter_for(hubs), [h.address for h in hubs], f"u{label}{r}", seconds))
    echo, hub = median_of(echo_runs), median_of(hub_runs)
    return {
        "replicas": len(hubs),
        "submit": hub,
        "echo": echo,
        "submit_vs_echo": round(hub["rps"] / echo["rps"], 3),
        "rounds": {
            "submit_rps": [round(r["rps"], 1) for r in hub_runs],
            "echo_rps": [round(r["rps"], 1) for r in echo_runs],
        },
    }


async def run() -> dict:
    seconds = 3.0 if QUICK else 8.0
    rounds = 1 if QUICK else 3
    bulk_items = 20_000 if QUICK else 100_000
    bin_dir = _bin_dir()
    if not bin_dir:
        raise SystemExit("PostgreSQL is not installed: run tools/install_tools.sh")
    load_before = loadavg()
    began = time.monotonic()
    server = PostgresServer(bin_dir, _owned_temp_dir(), durable=True)
    results: dict = {"postgres": [], "sqlite": None, "bulk_postgres": None}
    try:
        server.init()
        server.start()
        me = os.getpid()

        def meter_for(servers):
            return CpuMeter(
                {
                    "servers": lambda: [s.proc.pid for s in servers],
                    "database": lambda: [postmaster_pid(server), *children_of(postmaster_pid(server))],
                    "client": lambda: [me],
                }
            )

        for count in (1, 2, 3):
            name = f"bench_{count}"
            server.psql(f"CREATE DATABASE {name}")
            hubs = await start_hubs(count, CASPIAN_HUB_DATABASE_URL=server.url(name))
            echoes = start_echoes(count)
            try:
                results["postgres"].append(
                    await compare(hubs, echoes, meter_for, rounds, seconds, f"p{count}")
                )
                if count == 1:
                    meter = meter_for(hubs)
                    meter.start()
                    outcome = await bulk(hubs[0].address, bulk_items)
                    used = meter.stop()
                    results["bulk_postgres"] = {
                        "rps": round(outcome["rps"], 1),
                        "items": outcome["items"],
                        "seconds": round(outcome["seconds"], 3),
                        "cpu_seconds": {k: round(v, 2) for k, v in used.items()},
                    }
            finally:
                stop_all(hubs + echoes)
        with tempfile.TemporaryDirectory() as tmp:
            hubs = await start_hubs(1, CASPIAN_HUB_DB_PATH=str(Path(tmp) / "hub.db"))
            echoes = start_echoes(1)
            try:
                results["sqlite"] = await compare(hubs, echoes, meter_for, rounds, seconds, "s")
            finally:
                stop_all(hubs + echoes)
    finally:
        server.stop("fast")
        shutil.rmtree(server.root, ignore_errors=True)
    results["scaling"] = estimate_scaling(results["postgres"])
    results["setup"] = {
        "quick": QUICK,
        "rounds": rounds,
        "seconds_per_round": seconds,
        "concurrency": CONCURRENCY,
        "client": "bench/hub.py drive(), one process, calls split evenly over the replicas, 4 channels each",
        "postgres": "15, fsync on, full_page_writes on, synchronous_commit on, shared_buffers 32MB, unix socket",
        "sqlite": "synchronous=FULL",
        "hub_log_level": "WARNING",
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "grpc": grpc.__version__,
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
        "wall_seconds": round(time.monotonic() - began, 1),
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": "make bench-hub-replicas",
    }
    return results


def estimate_scaling(runs: list[dict]) -> dict:
    """Throughput a machine with more cores could reach, from the measured CPU per call of the hub and the
    database (the client excluded: it runs elsewhere). An estimate, not a measurement: it assumes CPU is the
    only limit, which ignores the revision lock every submission takes (one commit at a time, shared by a
    group) and the disk's fsync rate."""
    per_call = {}
    for run in runs:
        cost = run["submit"]["cpu_us_per_call"]
        per_call[run["replicas"]] = round(cost["servers"] + cost["database"], 1)
    cost_us = statistics.median(per_call.values())
    return {
        "server_plus_database_cpu_us_per_call": per_call,
        "estimated_rps_if_cpu_bound": {
            f"{cores}_cores": round(cores * 1e6 / cost_us) for cores in (2, 8, 16)
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.hub_replicas", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(RESULTS), help="where to write the JSON results")
    args = parser.parse_args(argv)
    results = asyncio.run(run())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    for run_ in results["postgres"] + [results["sqlite"]]:
        print(
            f"replicas={run_['replicas']} submit={run_['submit']['rps']:.0f}/s "
            f"p50={run_['submit']['p50_ms']:.1f}ms p99={run_['submit']['p99_ms']:.1f}ms "
            f"echo={run_['echo']['rps']:.0f}/s ratio={run_['submit_vs_echo']} cpu_us={run_['submit']['cpu_us_per_call']}"
        )
    print(f"bulk postgres: {results['bulk_postgres']}")
    print(f"scaling: {results['scaling']}")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
