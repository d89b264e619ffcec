"""Which runs the evaluation makes, and running them on a process pool.

A cell is one (setting, seed) with the forecasts to try. Per cell: one oracle solve, then every policy per
forecast, except the carbon-agnostic ones (round-robin, least-loaded), which never look at the forecast:
they run once and their figures stand for both forecasts (a test checks they are identical under both).
Runs are independent, so they go to a process pool, largest first.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field

from .interruptible import INTERRUPTIBLE_POLICIES
from .metrics import job_emissions, oracle_figures, row, run_figures
from .oracle import ORACLE_TIME_LIMIT_S, OracleResult, oracle_grams, solve_oracle
from .segment_figures import dirty_hours, segment_figures
from .simulate import TIME_LIMIT_S, RunResult, run_policy
from .workload import DEADLINES, LOADS, SETUPS, Instance, Setting, build_instance

log = logging.getLogger("caspian.evaluation")

POLICIES = ("round_robin", "least_loaded", "greedy_carbon", "temporal_only", "ibm_caspian", "caspian")
FORECAST_BLIND = ("round_robin", "least_loaded")
AGNOSTIC_REFERENCE = "least_loaded"
# Relative cost of a run, for ordering the pool's queue (largest first).
WEIGHT = {
    "caspian": 4,
    "ibm_caspian": 4,
    "temporal_only": 2,
    "greedy_carbon": 1,
    "round_robin": 1,
    "least_loaded": 1,
    "caspian_one_piece": 4,
    "wait_awhile": 2,
}


@dataclass(frozen=True)
class Cell:
    setting: Setting
    seed: int
    forecasts: tuple[str, ...] = ("perfect", "dacf")


@dataclass(frozen=True)
class Matrix:
    cells: tuple[Cell, ...]
    policies: tuple[str, ...] = POLICIES
    # Smaller instances (quick mode, tests): see workload.build_instance.
    jobs: int | None = None
    span_hours: float | None = None
    max_runtime_s: float | None = None
    time_limit_s: float = TIME_LIMIT_S
    oracle_time_limit_s: float = ORACLE_TIME_LIMIT_S
    # Add Wait AWhile and CASPIAN in one piece on interruptible settings (policies_of).
    interruptible_extras: bool = True

    def instance(self, setting: Setting, seed: int) -> Instance:
        return build_instance(
            setting, seed, jobs=self.jobs, span_hours=self.span_hours, max_runtime_s=self.max_runtime_s
        )


PRIMARY = Setting("default", "slack3", 0.5)
# Twice the dacf error (raw, and its shrinkage estimate), and tomorrow = today
# (bench/evaluation/forecasts.py; the estimate of a persistence forecast is the forecast itself).
STRESS_FORECASTS = ("dacf2x", "dacf2x+est", "persistence")


def full_matrix(seeds: Iterable[int] = (0, 1, 2)) -> Matrix:
    """`make evaluate`: one factor at a time around the primary setting (default set-up, slack 3, 50% load).

    The primary setting runs for every seed; each variation (the other deadlines, 80% load, the real-only
    set-up, the solarwind set-up, the dayahead set-up with real forecasts, the stress forecasts) for the first
    seed; every cell with perfect and dacf forecasts, the primary one's first seed also with dacf+est (the
    shrinkage estimate, CASPIAN_HUB_PLAN_ON_ESTIMATE). docs/evaluation.md says why. The interruptible
    settings (INTERRUPTIBLE_SETTINGS) are `make evaluate-interruptible`, apart: each of their cells takes
    20-70 min on 2 cores, so with them the matrix would be over five hours.
    """
    seeds = tuple(seeds)
    variations = [
        Setting("default", "slack1.5", 0.5),
        Setting("default", "slack6", 0.5),
        Setting("default", "24h", 0.5),
        Setting("default", "slack3", 0.8),
        Setting("real", "slack3", 0.5),
    ]
    # Robustness (issue 20), first seed: stress forecasts on the primary setting, another grid shape, and
    # real issued forecasts on the actuals of the same files.
    cells = [Cell(PRIMARY, seeds[0], ("perfect", "dacf", "dacf+est", *STRESS_FORECASTS))]
    cells += [Cell(PRIMARY, seed) for seed in seeds[1:]]
    cells += [Cell(setting, seeds[0]) for setting in variations]
    cells += [
        Cell(Setting("solarwind", "slack3", 0.5), seeds[0]),
        Cell(Setting("dayahead", "slack3", 0.5), seeds[0], ("perfect", "dacf", "real", "real+est")),
    ]
    return Matrix(tuple(cells))


# Issue 19: the default week with half and all of the jobs interruptible, at slack 3 and 6.
INTERRUPTIBLE_SETTINGS = tuple(
    Setting("default", deadline, 0.5, share) for deadline in ("slack3", "slack6") for share in (0.5, 1.0)
)


def policies_of(matrix: Matrix, setting: Setting) -> tuple[str, ...]:
    """The matrix's policies, plus Wait AWhile and CASPIAN in one piece where jobs are interruptible."""
    if not setting.interruptible or not matrix.interruptible_extras:
        return matrix.policies
    return matrix.policies + tuple(p for p in INTERRUPTIBLE_POLICIES if p not in matrix.policies)


def complete_matrix(seeds: Iterable[int] = (0, 1, 2)) -> Matrix:
    """Every set-up x deadline x load, every seed, both forecasts (`--complete`: hours on 2 cores)."""
    cells = [
        Cell(Setting(setup, deadline, load), seed)
        for setup in SETUPS
        for deadline in DEADLINES
        for load in LOADS
        for seed in seeds
    ]
    return Matrix(tuple(cells))


def quick_matrix(seed: int = 0) -> Matrix:
    """One day, 80 jobs of at most 4 hours, the primary setting: the whole pipeline in well under a minute."""
    return Matrix(
        (Cell(PRIMARY, seed),), jobs=80, span_hours=24, max_runtime_s=4 * 3600, oracle_time_limit_s=30.0
    )


@dataclass(frozen=True)
class Task:
    kind: str  # oracle | run
    setting: Setting
    seed: int
    policy: str = ""
    forecast: str = ""

    @property
    def weight(self) -> int:
        return 8 if self.kind == "oracle" else WEIGHT.get(self.policy, 1)


@dataclass
class Results:
    matrix: Matrix
    oracles: dict[tuple[str, int], OracleResult] = field(default_factory=dict)
    runs: dict[tuple[str, int, str, str], RunResult] = field(default_factory=dict)

    def run(self, setting: Setting, seed: int, policy: str, forecast: str) -> RunResult | None:
        if policy in FORECAST_BLIND:
            forecast = "perfect"
        return self.runs.get((setting.name, seed, policy, forecast))


def tasks_of(matrix: Matrix) -> list[Task]:
    tasks = []
    for cell in matrix.cells:
        real = [f for f in cell.forecasts if f.removesuffix("+est") == "real"]
        if real and cell.setting.setup != "dayahead":
            raise ValueError(f"{cell.setting.name}: forecast {real[0]!r} needs the dayahead set-up's zones")
        tasks.append(Task("oracle", cell.setting, cell.seed))
        for policy in policies_of(matrix, cell.setting):
            forecasts = ("perfect",) if policy in FORECAST_BLIND else cell.forecasts
            for forecast in forecasts:
                tasks.append(Task("run", cell.setting, cell.seed, policy, forecast))
    return sorted(tasks, key=lambda t: -t.weight)


def execute(matrix: Matrix, task: Task) -> tuple[Task, OracleResult | RunResult]:
    logging.getLogger("caspian").setLevel(logging.WARNING)
    instance = matrix.instance(task.setting, task.seed)
    if task.kind == "oracle":
        return task, solve_oracle(instance, time_limit_s=matrix.oracle_time_limit_s)
    return task, run_policy(instance, task.policy, task.forecast, time_limit_s=matrix.time_limit_s)


def run_matrix(
    matrix: Matrix, workers: int = 2, progress: Callable[[Task, float], None] | None = None
) -> Results:
    results = Results(matrix)
    tasks = tasks_of(matrix)
    if workers <= 1:
        outputs = (execute(matrix, task) for task in tasks)
        for task, output in outputs:
            _store(results, task, output)
            if progress:
                progress(task, 0.0)
        return results
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(execute, matrix, task) for task in tasks]
        for future in as_completed(futures):
            task, output = future.result()
            _store(results, task, output)
            if progress:
                progress(task, 0.0)
    return results


def _store(results: Results, task: Task, output) -> None:
    if task.kind == "oracle":
        results.oracles[(task.setting.name, task.seed)] = output
    else:
        results.runs[(task.setting.name, task.seed, task.policy, task.forecast)] = output


def rows_of(results: Results) -> list[dict]:
    """evaluation.json: one object per (setting, seed, policy, forecast), the oracle once per forecast."""
    matrix = results.matrix
    out = []
    for cell in matrix.cells:
        instance = matrix.instance(cell.setting, cell.seed)
        oracle = results.oracles[(cell.setting.name, cell.seed)]
        feasible = oracle.feasible_ids
        reference = results.run(cell.setting, cell.seed, AGNOSTIC_REFERENCE, "perfect")
        per_job = job_emissions(instance, reference) if reference else {}
        agnostic_g = run_figures(instance, reference, feasible).emitted_g if reference else 0.0
        oracle_g = oracle_grams(instance, oracle)
        dirty = dirty_hours(instance) if cell.setting.interruptible else None
        for forecast in cell.forecasts:
            for policy in policies_of(matrix, cell.setting):
                run = results.run(cell.setting, cell.seed, policy, forecast)
                if run is None:
                    continue
                figures = run_figures(instance, run, feasible, per_job)
                notes = list(run.notes)
                if run.fallback_cycles:
                    notes.append(f"{run.fallback_cycles} cycles used the hub's greedy fallback")
                r = row(instance, policy, forecast, figures, agnostic_g, oracle, oracle_g, notes)
                r.update(
                    cycles=run.cycles,
                    fallback_cycles=run.fallback_cycles,
                    optimizer_errors=run.optimizer_errors,
                )
                if dirty is not None:
                    r["segments"] = segment_figures(instance, run.outcomes, dirty)
                out.append(r)
            out.append(
                row(
                    instance,
                    "oracle",
                    forecast,
                    oracle_figures(instance, oracle),
                    agnostic_g,
                    oracle,
                    oracle_g,
                )
            )
            if dirty is not None:
                out[-1]["segments"] = segment_figures(instance, oracle.jobs, dirty)
    return out


def default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))
