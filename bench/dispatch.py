"""`make bench-dispatch`: how fast the dispatcher turns DispatchJob calls into Jobs on three spokes.

Three spoke simulator processes (carbon-kr, carbon-jp, carbon-cn) and one dispatcher process, started as
`make run` starts them, with a kubeconfig that has one context per spoke. Everything runs on this machine.

1. Throughput: N DispatchJob calls spread round-robin over the spokes, at most C in flight, as fast as the
   dispatcher answers. jobs_per_s = N / wall time from the first call to the last answer.
2. Latency at 100 jobs/s: an open-loop schedule, call i due at t0 + i/100 s whatever happened to earlier calls.
   gate_opened_at is the due time, and the latency of a call is from its due time to its answer, so it
   includes any queueing in the client, on the wire, in the dispatcher and on the spoke. It is an upper bound
   of "gate open -> Job created" (the dispatcher's own histogram measures that; its bucketed p99 is reported
   beside it).

Jobs run for 2 s of wall time, so pods come and go as in steady operation. Writes bench/results/dispatch.json
and dispatch.md. BENCH_QUICK=1 runs shorter rounds (well under a minute).
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import grpc
import httpx

from bench.stats import percentile
from caspian.v1 import common_pb2, dispatcher_pb2, dispatcher_pb2_grpc
from clusters.simulator.fleet import servers, start_spokes, stop_spokes
from clusters.simulator.kubeconfig import write_kubeconfig
from clusters.simulator.spec import DEFAULT_SPOKES
from services.common.timeconv import to_duration, to_timestamp
from services.launcher.procs import ServiceProcess

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0", "false")
RATE = 100.0
THROUGHPUT_JOBS = 300 if QUICK else 1500
THROUGHPUT_IN_FLIGHT = 32
LATENCY_SECONDS = 10 if QUICK else 30
JOB_SECONDS = 2


def app_wrapper(aw_id: str) -> common_pb2.AppWrapper:
    return common_pb2.AppWrapper(
        id=aw_id,
        template=common_pb2.JobTemplate(
            image="busybox:1.36",
            resources=common_pb2.Resources(cpu_millis=100, memory_bytes=64 << 20),
            expected_runtime=to_duration(JOB_SECONDS),
        ),
    )


def request(aw_id: str, cluster: str, gate: datetime | None = None) -> dispatcher_pb2.DispatchJobRequest:
    req = dispatcher_pb2.DispatchJobRequest(app_wrapper=app_wrapper(aw_id), cluster=cluster)
    if gate is not None:
        req.gate_opened_at.CopyFrom(to_timestamp(gate))
    return req


async def throughput(stub, prefix: str) -> dict:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(THROUGHPUT_JOBS):
        queue.put_nowait(i)
    errors = 0

    async def worker() -> None:
        nonlocal errors
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            cluster = DEFAULT_SPOKES[i % len(DEFAULT_SPOKES)]
            try:
                response = await stub.DispatchJob(request(f"{prefix}-{i}", cluster), timeout=30)
                errors += 0 if response.created else 1
            except grpc.aio.AioRpcError:
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(THROUGHPUT_IN_FLIGHT)))
    elapsed = time.perf_counter() - started
    return {"jobs": THROUGHPUT_JOBS, "in_flight": THROUGHPUT_IN_FLIGHT, "seconds": elapsed, "errors": errors}


async def latency_at_rate(stub, prefix: str) -> dict:
    count = int(RATE * LATENCY_SECONDS)
    latencies: list[float] = []
    timeline: list[tuple[float, float]] = []  # (due second, latency) to tell a stall from a steady backlog
    errors = 0
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.2
    wall0 = time.time() + 0.2

    async def one(i: int) -> None:
        nonlocal errors
        due = t0 + i / RATE
        await asyncio.sleep(max(0.0, due - loop.time()))
        gate = datetime.fromtimestamp(wall0 + i / RATE, UTC)
        cluster = DEFAULT_SPOKES[i % len(DEFAULT_SPOKES)]
        try:
            await stub.DispatchJob(request(f"{prefix}-{i}", cluster, gate), timeout=30)
        except grpc.aio.AioRpcError:
            errors += 1
            return
        latencies.append(loop.time() - due)
        timeline.append((i / RATE, latencies[-1]))

    await asyncio.gather(*(one(i) for i in range(count)))
    return {
        "jobs": count,
        "rate_per_s": RATE,
        "errors": errors,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p90_ms": percentile(latencies, 90) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "max_ms": max(latencies) * 1000,
        "mean_ms": statistics.fmean(latencies) * 1000,
        "worst": [
            [round(t, 2), round(lat * 1000, 1)] for t, lat in sorted(timeline, key=lambda x: -x[1])[:5]
        ],
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def histogram_buckets(metrics_text: str) -> list[tuple[float, float]]:
    buckets = []
    for line in metrics_text.splitlines():
        match = re.match(r'caspian_dispatch_latency_seconds_bucket\{le="([^"]+)"\} (\S+)', line)
        if match:
            buckets.append((float(match[1]), float(match[2])))
    return buckets


def histogram_p99_ms(before: list[tuple[float, float]], after: list[tuple[float, float]]) -> float | None:
    """The dispatcher's own gate -> created p99 over the paced phase: the upper bound of its bucket."""
    counts = [(upper, total - dict(before).get(upper, 0.0)) for upper, total in after]
    if not counts or counts[-1][1] == 0:
        return None
    total = counts[-1][1]
    return next(upper * 1000 for upper, count in counts if count >= 0.99 * total)


async def run_benchmark(
    address: str, metrics_address: str, pids: dict[str, int]
) -> tuple[dict, dict, float | None]:
    prefix = uuid.uuid4().hex[:6]
    async with grpc.aio.insecure_channel(address) as channel, httpx.AsyncClient(timeout=10) as http:
        stub = dispatcher_pb2_grpc.DispatcherServiceStub(channel)
        # Warm-up: connections to every spoke, first Jobs.
        for i, cluster in enumerate(DEFAULT_SPOKES * 3):
            await stub.DispatchJob(request(f"warm-{prefix}-{i}", cluster), timeout=30)
        burst = await throughput(stub, f"tp-{prefix}")
        await asyncio.sleep(JOB_SECONDS + 1)  # let the burst's Jobs finish
        metrics_url = f"http://{metrics_address}/metrics"
        before = histogram_buckets((await http.get(metrics_url)).text)
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        paced = await latency_at_rate(stub, f"lat-{prefix}")
        paced["cpu_seconds"] = {
            name: round(cpu_seconds(pid) - cpu_before[name], 2) for name, pid in pids.items()
        }
        after = histogram_buckets((await http.get(metrics_url)).text)
    return burst, paced, histogram_p99_ms(before, after)


def main() -> int:
    env = {"CASPIAN_CLOCK_MODE": "wall", "CASPIAN_DISPATCHER_LOG_LEVEL": "WARNING"}
    with tempfile.TemporaryDirectory() as tmp:
        spokes = start_spokes(env=env, extra_args=("--log-level", "WARNING"))
        dispatcher = None
        try:
            kubeconfig = write_kubeconfig(Path(tmp) / "spokes.kubeconfig", servers(spokes))
            dispatcher = ServiceProcess(
                "services.dispatcher",
                env={
                    **env,
                    "CASPIAN_DISPATCHER_PORT": "0",
                    "CASPIAN_DISPATCHER_METRICS_PORT": "0",
                    "CASPIAN_DISPATCHER_KUBECONFIG": kubeconfig,
                },
            ).start()
            pids = {"dispatcher": dispatcher.proc.pid, "bench_client": os.getpid()}
            pids.update({f"spoke {name}": proc.proc.pid for name, proc in spokes.items()})
            burst, paced, histogram_p99 = asyncio.run(
                run_benchmark(dispatcher.address, dispatcher.metrics_address, pids)
            )
        finally:
            if dispatcher is not None:
                dispatcher.terminate()
            stop_spokes(spokes)
    result = {
        "jobs_per_s": round(burst["jobs"] / burst["seconds"], 1),
        "p50_ms": round(paced["p50_ms"], 1),
        "p99_ms": round(paced["p99_ms"], 1),
        "p90_ms": round(paced["p90_ms"], 1),
        "max_ms": round(paced["max_ms"], 1),
        "latency_rate_per_s": RATE,
        "latency_jobs": paced["jobs"],
        "latency_errors": paced["errors"],
        "dispatcher_histogram_p99_ms_upper_bound": histogram_p99,
        "latency_worst_at_s_ms": paced["worst"],
        "latency_phase_seconds": LATENCY_SECONDS,
        "latency_phase_cpu_seconds": paced["cpu_seconds"],
        "throughput_jobs": burst["jobs"],
        "throughput_in_flight": burst["in_flight"],
        "throughput_errors": burst["errors"],
        "spokes": len(DEFAULT_SPOKES),
        "quick": QUICK,
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_1m_at_end": round(os.getloadavg()[0], 2),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
        },
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "dispatch.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "dispatch.md").write_text(_markdown(result))
    print(json.dumps(result, indent=2))
    return 0 if not (burst["errors"] or paced["errors"]) else 1


def _markdown(r: dict) -> str:
    goal = "met" if r["p99_ms"] <= 200 else "not met"
    return (
        "# Dispatch benchmark\n\n"
        f"Measured {r['measured_at']} on {r['machine']['cpus']} CPUs (Python {r['machine']['python']}; "
        f"1-minute load average {r['machine']['load_average_1m_at_end']} at the end, other work included), "
        f"{'quick' if r['quick'] else 'full'} run: three spoke simulator processes and one dispatcher process "
        "on the same machine, reached through the official kubernetes client.\n\n"
        "| measure | value |\n|---|---|\n"
        f"| Jobs created per second ({r['throughput_jobs']} jobs, {r['throughput_in_flight']} in flight) "
        f"| {r['jobs_per_s']} |\n"
        f"| p50 latency at {r['latency_rate_per_s']:.0f} jobs/s ({r['latency_jobs']} jobs) | {r['p50_ms']} ms |\n"
        f"| p90 latency | {r['p90_ms']} ms |\n"
        f"| p99 latency (goal <= 200 ms: {goal}) | {r['p99_ms']} ms |\n"
        f"| max latency | {r['max_ms']} ms |\n"
        f"| dispatcher histogram p99, bucket upper bound | {r['dispatcher_histogram_p99_ms_upper_bound']} ms |\n"
        f"| errors | {r['throughput_errors'] + r['latency_errors']} |\n\n"
        "Latency is from the scheduled gate time to the DispatchJob answer, an upper bound of gate -> Job "
        "created.\n\nCPU seconds used during the latency phase "
        f"({r['latency_phase_seconds']} s): "
        + ", ".join(f"{name} {cpu}" for name, cpu in r["latency_phase_cpu_seconds"].items())
        + ".\n"
    )


if __name__ == "__main__":
    raise SystemExit(main())
