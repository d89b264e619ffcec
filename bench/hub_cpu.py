"""The hub process's CPU per submission, for comparing versions of the hub under the same load.

    python -m bench.hub_cpu --rounds 3 DIR[=PYTHON] DIR[=PYTHON] ...

Each DIR is a checkout of the project (a `git worktree` of a commit); PYTHON is the interpreter to run its hub
with (default: DIR/.venv/bin/python; one with the same grpcio and protobuf may serve several checkouts, whose
own `protos/` and sources come first on its path). Mind that another checkout's `.venv` holds an editable
install of that checkout: a module the DIR does not have is then imported from there, silently, so give a
checkout that lacks modules of the interpreter's own checkout (an old commit) its own `.venv`. For every round, every checkout in turn: the hub starts as
`python -m services.hub` on a fresh SQLite file (synchronous=FULL, the scheduler off), three clusters are
registered, 2,000 warm-up calls are made, then `--calls` unary SubmitAppWrapper calls from 64 concurrent tasks
on 4 channels (or `--items` AppWrappers in SubmitAppWrappers batches of 1,000, as bench/hub.py's bulk), and
the hub process's user + system CPU time (`/proc/<pid>/stat`, every thread) is divided by the calls. CPU time,
unlike requests per second, hardly depends on what else the machine is doing. Prints one JSON line per
measurement and a summary of medians; nothing is written to bench/results.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc

from bench.hub import bulk, hub_env, register_clusters, request_template
from caspian.v1 import hub_pb2, hub_pb2_grpc

READY = re.compile(r"^READY service=hub grpc=(\S+)")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _unary(address: str, calls: int, prefix: str) -> None:
    template = request_template()
    channels = [grpc.aio.insecure_channel(address) for _ in range(4)]
    stubs = [hub_pb2_grpc.HubServiceStub(c) for c in channels]
    numbers = iter(range(calls))

    async def worker(k: int) -> None:
        for i in numbers:
            request = hub_pb2.SubmitAppWrapperRequest()
            request.CopyFrom(template)
            request.app_wrapper.id = f"{prefix}-{i}"
            await stubs[k % len(stubs)].SubmitAppWrapper(request, timeout=30)

    await asyncio.gather(*(worker(k) for k in range(64)))
    for channel in channels:
        await channel.close()


def measure(project: Path, python: str, calls: int, items: int) -> dict:
    """One hub of `project`: CPU microseconds per unary call and per bulk item."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            **hub_env(CASPIAN_HUB_DB_PATH=str(Path(tmp) / "hub.db")),
            "PYTHONPATH": f"{project / 'protos'}{os.pathsep}{project}",
        }
        hub = subprocess.Popen(
            [python, "-m", "services.hub"],
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            address = None
            assert hub.stdout is not None
            for line in hub.stdout:
                found = READY.match(line)
                if found:
                    address = found.group(1)
                    break
            if address is None:
                raise RuntimeError(f"the hub of {project} did not start (exit {hub.wait(10)})")
            asyncio.run(register_clusters(address))
            asyncio.run(_unary(address, 2000, "warm"))
            began = _cpu_seconds(hub.pid)
            asyncio.run(_unary(address, calls, "unary"))
            unary = _cpu_seconds(hub.pid) - began
            began = _cpu_seconds(hub.pid)
            asyncio.run(bulk(address, items, prefix="bulk"))
            bulked = _cpu_seconds(hub.pid) - began
        finally:
            hub.send_signal(signal.SIGTERM)
            try:
                hub.wait(60)
            except subprocess.TimeoutExpired:
                hub.kill()
    return {"unary_us": 1e6 * unary / calls, "bulk_us": 1e6 * bulked / items}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkouts", nargs="+", help="DIR or DIR=PYTHON")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=100_000)
    args = parser.parse_args(argv)
    versions = []
    for spec in args.checkouts:
        directory, _, python = spec.partition("=")
        project = Path(directory).resolve()
        versions.append((project, python or str(project / ".venv" / "bin" / "python")))
    results: dict[str, list[dict]] = {str(p): [] for p, _ in versions}
    for round_ in range(1, args.rounds + 1):
        for project, python in versions:
            load = os.getloadavg()[0]
            figures = measure(project, python, args.calls, args.items)
            results[str(project)].append(figures)
            line = {
                "round": round_,
                "checkout": str(project),
                "load": round(load, 2),
                "at": time.strftime("%H:%M:%S"),
            }
            print(json.dumps({**line, **{k: round(v, 1) for k, v in figures.items()}}), flush=True)
    for project, runs in results.items():
        unary = statistics.median(r["unary_us"] for r in runs)
        bulk_ = statistics.median(r["bulk_us"] for r in runs)
        print(
            f"{project}: median {unary:.1f} us per unary call, {bulk_:.1f} us per bulk item", file=sys.stderr
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
