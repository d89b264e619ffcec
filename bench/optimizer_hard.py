"""The optimizer benchmark's hard families (bench/hard_instances.py), each checked against the independent exact
model (bench/exact.py) where it is small enough to finish, a warm re-plan, and CASPIAN's committed code on the
S-XL families in the same run.

Every solve runs in a forked child (bench/optimizer.py's `run_one`), one at a time. The old code runs from a
worktree of the base commit (`BENCH_BASE`, e.g. `git worktree add /tmp/opt-base <commit>` with its own
`make install`) as a child process of its own interpreter.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np

from bench.exact import solve_exact
from bench.hard_instances import HARD_FAMILIES, make_hard_instance
from services.optimizer.compiled import compile_problem
from services.optimizer.problem import Options, Policy, Problem
from services.optimizer.solve import solve

SEEDS = (0, 1, 2)
LIMITS = {
    "D96-300": 5.0,
    "D96-1000": 5.0,
    "D96-tight": 5.0,
    "D96-gpu": 30.0,
    "D96-burst": 30.0,
    "H288-25": 30.0,
}
POLICIES = (
    Policy.CASPIAN,
    Policy.ROUND_ROBIN,
    Policy.LEAST_LOADED,
    Policy.GREEDY_CARBON,
    Policy.TEMPORAL_ONLY,
    Policy.IBM_CASPIAN,
)
EXACT_MAX_BINARIES = 150_000
EXACT_LIMIT_S = 60.0
WARM_FAMILIES = ("D96-burst",)
WARM_LIMIT_S = 2.0
TARGET_GAP = 0.01


def _in_child(fn, args: tuple, timeout_s: float) -> dict:
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)

    def target(conn, *a):
        conn.send(fn(*a))
        conn.close()

    proc = ctx.Process(target=target, args=(child, *args))
    proc.start()
    child.close()
    row = parent.recv() if parent.poll(timeout_s) else None
    proc.join(5)
    if proc.is_alive():
        proc.kill()
        proc.join()
    return row if row is not None else {"status": "killed"}


def option_count(problem: Problem) -> int:
    """Binaries of the exact model: allowed (job, cluster, start) options, from the compiled classes."""
    cp = compile_problem(problem, Options())
    if cp.classes == 0:
        return 0
    return int((np.isfinite(cp.cost).reshape(cp.classes, -1).sum(axis=1) * cp.count).sum())


def _exact_row(problem: Problem) -> dict:
    e = solve_exact(problem, EXACT_LIMIT_S)
    return {
        "status": "optimal" if e.proven else "stopped",
        "binaries": e.binaries,
        "max_weight": e.max_weight,
        "weight_bound": e.weight_bound,
        "cost": e.cost,
        "cost_bound": e.cost_bound,
        "wall_s": e.seconds,
    }


def _warm_row(problem: Problem, limit: float) -> dict:
    cold = solve(problem, Options(time_limit_s=limit, mip_gap=TARGET_GAP))
    jobs = []
    for job, p in zip(problem.jobs, cold.placements, strict=True):
        jobs.append(replace(job, previous_cluster=p.cluster, previous_start=p.start) if p.placed else job)
    warm_problem = replace(problem, jobs=tuple(jobs))
    warm = solve(warm_problem, Options(time_limit_s=limit, mip_gap=TARGET_GAP))
    return {
        "status": warm.status.value,
        "cold_wall_s": cold.wall_seconds,
        "cold_placed": cold.placed_count,
        "cold_gap": cold.gap,
        "cold_objective_g": cold.objective_gco2,
        "wall_s": warm.wall_seconds,
        "placed": warm.placed_count,
        "gap": warm.gap,
        "objective_g": warm.objective_gco2,
        "placed_weight_bound": warm.placed_weight_bound,
    }


def run_hard(families: list[str], seeds: tuple[int, ...], quick: bool, log=print) -> list[dict]:
    from bench.optimizer import run_one

    rows: list[dict] = []
    for family in families:
        fam = HARD_FAMILIES[family]
        limit = 5.0 if quick else LIMITS[family]
        for seed in seeds:
            problem, load = make_hard_instance(family, seed)
            base = {
                "suite": "hard",
                "instance": f"{family}-{seed}",
                "family": family,
                "seed": seed,
                "jobs": fam.jobs,
                "clusters": fam.clusters,
                "slots": fam.slots,
                "measured_load": load,
                "time_limit_s": limit,
            }
            for policy in POLICIES:
                options = Options(policy=policy, time_limit_s=limit, mip_gap=TARGET_GAP)
                row = {**base, "policy": policy.value, **run_one(problem, options, limit + 120)}
                rows.append(row)
                log(
                    f"{row['instance']:14s} {policy.value:14s} {row['status']:20s} wall {row['wall_s']:7.2f} s "
                    f"placed {row.get('placed', 0)} (bound {row.get('placed_weight_bound')}) "
                    f"obj {row.get('objective_g', math.nan):10.2f} gap {row.get('gap', math.nan):.4f}"
                )
            binaries = option_count(problem)
            if binaries <= EXACT_MAX_BINARIES:
                exact = _in_child(_exact_row, (problem,), EXACT_LIMIT_S * 2 + 120)
            else:
                exact = {"status": "not run", "binaries": binaries}
            rows.append({**base, "suite": "exact", "policy": "exact", **exact})
            log(f"{base['instance']:14s} exact          {exact}")
            if family in WARM_FAMILIES and not quick:
                warm = _in_child(_warm_row, (problem, WARM_LIMIT_S), 120)
                rows.append(
                    {**base, "suite": "warm", "policy": "caspian", "time_limit_s": WARM_LIMIT_S, **warm}
                )
                log(f"{base['instance']:14s} warm           {warm}")
    return rows


BASE_SCRIPT = """
import json, sys
from bench.instances import make_instance
from services.optimizer.problem import Options
from services.optimizer.solve import solve
family, seed, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
r = solve(make_instance(family, seed), Options(time_limit_s=limit, mip_gap=0.01))
print(json.dumps({"status": r.status.value, "wall_s": r.wall_seconds, "placed": r.placed_count,
                  "objective_g": r.objective_gco2, "bound_g": r.lower_bound_gco2, "gap": r.gap,
                  "emissions_g": r.emissions_gco2}))
"""


def base_commit() -> str:
    """The short commit of the `BENCH_BASE` worktree, '' when there is none."""
    base = os.environ.get("BENCH_BASE", "")
    if not base:
        return ""
    done = subprocess.run(
        ["git", "-C", base, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() if done.returncode == 0 else ""


def run_base(family: str, seed: int, limit: float) -> dict:
    """CASPIAN at the base commit on a committed family, in that worktree's own interpreter."""
    base = Path(os.environ.get("BENCH_BASE", ""))
    python = base / ".venv" / "bin" / "python"
    if not base.name or not python.exists():
        return {"status": "not run"}
    done = subprocess.run(
        [str(python), "-c", BASE_SCRIPT, family, str(seed), str(limit)],
        cwd=base,
        capture_output=True,
        text=True,
        timeout=limit + 120,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    return json.loads(lines[-1]) if done.returncode == 0 and lines else {"status": "crashed"}
