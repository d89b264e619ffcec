"""`make evaluate`: every policy through the real hub on a week of real grid data and job arrivals.

    python -m bench.evaluate                 # the full matrix (docs/evaluation.md), tens of minutes on 2 cores
    BENCH_QUICK=1 python -m bench.evaluate   # one small cell, under a minute
    python -m bench.evaluate --complete      # every setting x seed x forecast: hours
    python -m bench.evaluate --seeds 0,1,2 --workers 2 --out bench/results

Writes bench/results/evaluation.{json,md} and the plots evaluation.emissions.png and evaluation.day.png
(quick mode: evaluation.quick.{json,md} only, and --complete: evaluation.complete.*, so neither
overwrites the results of `make evaluate`).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.evaluation.matrix import (
    Matrix,
    Task,
    complete_matrix,
    default_workers,
    full_matrix,
    quick_matrix,
    rows_of,
    run_matrix,
    tasks_of,
)
from bench.evaluation.report import write_all

RESULTS = Path(__file__).resolve().parent / "results"


def evaluate(
    matrix: Matrix, out: Path, prefix: str, *, workers: int, plots: bool, command: str
) -> list[dict]:
    began = time.perf_counter()
    # Taken before the run: the workers import the code now, whatever changes in the tree later.
    code = code_fingerprint()
    done = [0]
    total = len(tasks_of(matrix))

    def progress(task: Task, _: float) -> None:
        done[0] += 1
        what = "oracle" if task.kind == "oracle" else f"{task.policy}/{task.forecast}"
        print(
            f"[{done[0]}/{total}] {time.perf_counter() - began:7.1f}s  {task.setting.name} seed {task.seed} {what}",
            file=sys.stderr,
            flush=True,
        )

    results = run_matrix(matrix, workers=workers, progress=progress)
    rows = rows_of(results)
    meta = {
        "command": command,
        "cpus": os.cpu_count(),
        "wall_minutes": (time.perf_counter() - began) / 60,
        "runs": len(results.runs),
        "oracles": len(results.oracles),
        "code": code,
    }
    for path in write_all(rows, results, out, prefix, meta, plots):
        print(f"wrote {path}", file=sys.stderr)
    for r in invalid_rows(rows):
        print(
            f"INVALID: {r['setting']} seed {r['seed']} {r['policy']}/{r['forecast']}: "
            f"{r['fallback_cycles']} cycles placed by the hub's fallback, {r['optimizer_errors']} solves raised",
            file=sys.stderr,
        )
    return rows


def invalid_rows(rows: list[dict]) -> list[dict]:
    """Runs where the optimizer failed and the hub's greedy fallback placed jobs: not the policy's figures."""
    return [r for r in rows if r.get("fallback_cycles") or r.get("optimizer_errors")]


def code_fingerprint() -> str:
    """Which code produced the figures: the commit, and a hash of the sources the evaluation runs."""
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for folder in (
        "services/common",
        "services/hub",
        "services/optimizer",
        "services/carbon",
        "bench/evaluation",
    ):
        for path in sorted((root / folder).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{commit or 'no git'} + sources sha256:{digest.hexdigest()[:12]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="the small matrix (also BENCH_QUICK=1)")
    parser.add_argument("--complete", action="store_true", help="every setting, seed and forecast")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (full matrix)")
    parser.add_argument("--workers", type=int, default=default_workers(), help="worker processes")
    parser.add_argument("--out", type=Path, default=RESULTS, help="output directory")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("caspian").setLevel(logging.WARNING)
    quick = args.quick or os.environ.get("BENCH_QUICK", "") not in ("", "0")
    seeds = tuple(int(s) for s in args.seeds.split(",") if s.strip())
    if quick:
        matrix, prefix, command = quick_matrix(seeds[0]), "evaluation.quick", "BENCH_QUICK=1 make evaluate"
    elif args.complete:
        matrix, prefix, command = (
            complete_matrix(seeds),
            "evaluation.complete",
            "python -m bench.evaluate --complete",
        )
    else:
        matrix, prefix, command = full_matrix(seeds), "evaluation", "make evaluate"
    rows = evaluate(matrix, args.out, prefix, workers=args.workers, plots=not quick, command=command)
    return 1 if invalid_rows(rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
