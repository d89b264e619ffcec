"""Chosen cells of the evaluation, for measurements smaller than `make evaluate`: one JSON line per cell.

    python -m bench.evaluate_cells --settings default/slack3/load80 --seeds 0,1,2 \\
        --forecasts perfect,dacf,dacf+est --policies caspian,greedy_carbon --jobs 200 --span-hours 72
    python -m bench.evaluate_cells --week --settings default/slack6/load50 --seeds 0 --forecasts dacf+est

Default (medium cells): the instance with `--jobs` jobs of at most `--max-runtime-hours`, arrivals over
`--span-hours`; an oracle (`--oracle-limit` s), the least-loaded reference and each policy x forecast. Each
entry under "runs" is [kgCO2 with unrun work charged, capture of the oracle's saving %, late + not run,
fallback cycles]. `--week`: the full committed instances, only the policies' runs, captured against the
least-loaded and oracle figures of the committed bench/results/evaluation.json (no oracle solve), or, for a
seed the committed run does not hold (a tuning seed), only the kilograms; `--hub name=value` overrides a hub
setting in those runs (e.g. `--hub hedge_far_slots=1`); in medium cells it applies to our CASPIAN, and each
`--variant a=1,b=2` runs our CASPIAN once more with those overrides against the same oracle.
`--full`: the full instances through the matrix code of `make evaluate` (oracle, least-loaded, each policy,
and on interruptible settings also Wait AWhile and CASPIAN in one piece), one worker; the rows are those of
evaluation.json. Nothing is written to bench/results unless `--out` names a file prefix:

    nice -n 10 python -m bench.evaluate_cells --full --settings default/slack3/load50/int100 \
        --policies caspian,ibm_caspian --forecasts perfect,dacf --out bench/results/evaluation.interruptible
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.evaluation.matrix import AGNOSTIC_REFERENCE, Cell, Matrix, rows_of, run_matrix, tasks_of
from bench.evaluation.metrics import job_emissions, run_figures
from bench.evaluation.oracle import oracle_grams, solve_oracle
from bench.evaluation.report_interruptible import markdown_lines as interruptible_lines
from bench.evaluation.simulate import run_policy
from bench.evaluation.workload import Setting, build_instance

COMMITTED = Path(__file__).resolve().parent / "results" / "evaluation.json"


def medium_cell(
    matrix: Matrix, setting: Setting, seed: int, policies, forecasts, variants: list[dict] | None = None
) -> dict:
    instance = matrix.instance(setting, seed)
    began = time.perf_counter()
    reference = run_policy(instance, "least_loaded", "perfect")
    per_job = job_emissions(instance, reference)
    if matrix.oracle_time_limit_s > 0:
        oracle = solve_oracle(instance, time_limit_s=matrix.oracle_time_limit_s)
        oracle_g, feasible, exact = oracle_grams(instance, oracle), oracle.feasible_ids, oracle.exact
    else:  # --oracle-limit 0: kilograms only (tuning runs compared with each other)
        oracle_g, feasible, exact = math.inf, {j.id for j in instance.jobs}, False
    agnostic_g = run_figures(instance, reference, feasible, per_job).emitted_g
    out = {
        "setting": setting.name,
        "seed": seed,
        "jobs": len(instance.jobs),
        "agnostic_kg": round(agnostic_g / 1000, 4),
        "oracle_kg": round(oracle_g / 1000, 4) if math.isfinite(oracle_g) else None,
        "oracle_exact": exact,
        "runs": {},
    }
    for spec in policies:
        policy, overrides = policy_spec(spec)
        for forecast in forecasts:
            # The hub-setting variants apply to our CASPIAN alone; each run is labelled with its overrides.
            for hub in variants if policy == "caspian" and variants else [{}]:
                merged = {**overrides, **hub}
                run = run_policy(instance, policy, forecast, hub_overrides=merged or None)
                figures = run_figures(instance, run, feasible, per_job)
                grams = figures.emitted_g + figures.unrun_g
                capture = (
                    100 * (agnostic_g - grams) / (agnostic_g - oracle_g)
                    if math.isfinite(oracle_g) and agnostic_g > oracle_g
                    else None
                )
                label = " ".join(f"{k}={v}" for k, v in sorted(hub.items()))
                out["runs"][f"{spec}/{forecast}" + (f" [{label}]" if label else "")] = [
                    round(grams / 1000, 4),
                    None if capture is None else round(capture, 2),
                    figures.late + figures.not_run_feasible,
                    run.fallback_cycles,
                ]
    out["seconds"] = round(time.perf_counter() - began, 1)
    return out


def week_cell(
    setting: Setting, seed: int, policies, forecasts, committed: list[dict], hub: dict | None = None
) -> dict:
    """A full week; captured against the committed run's figures where it holds this (setting, seed), else
    (a tuning seed) only the kilograms, to compare runs of the same instance."""
    oracle = next(
        (
            r
            for r in committed
            if r["setting"] == setting.name and r["seed"] == seed and r["policy"] == "oracle"
        ),
        None,
    )
    instance = build_instance(setting, seed)
    out: dict = {"setting": setting.name, "seed": seed, "hub": hub or {}, "runs": {}}
    if oracle is not None:
        out.update(agnostic_kg=oracle["agnostic_kg"], oracle_kg=oracle["oracle_kg"])
    for policy in policies:
        for forecast in forecasts:
            run = run_policy(instance, policy, forecast, hub_overrides=hub)
            figures = run_figures(instance, run, {j.id for j in instance.jobs}, {})
            kg = figures.emitted_g / 1000
            entry = {"kg": round(kg, 4), "late_or_not_run": figures.late + figures.not_run_feasible}
            if oracle is not None:
                agnostic, best, bound = oracle["agnostic_kg"], oracle["oracle_kg"], oracle["oracle_bound_kg"]
                entry["capture"] = round(100 * (agnostic - kg) / (agnostic - best), 2)
                entry["bound_capture"] = round(100 * (agnostic - kg) / (agnostic - bound), 2)
            out["runs"][f"{policy}/{forecast}"] = entry
    return out


def policy_spec(spec: str) -> tuple[str, dict]:
    """`policy` or `policy@name=value@name=value`: the policy and its own hub setting overrides (medium
    cells), e.g. `caspian@forecast_skill=true` beside plain `caspian` and `greedy_carbon`."""
    policy, *pairs = spec.split("@")
    return policy, hub_overrides(pairs)


def hub_overrides(pairs: list[str]) -> dict:
    """`--hub name=value` pairs as hub setting overrides, each value parsed as the setting's type."""
    from dataclasses import fields

    from services.hub.settings import HubSettings

    types = {f.name: type(f.default) for f in fields(HubSettings)}
    out: dict = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        if name not in types:
            raise SystemExit(f"--hub: no hub setting {name!r}")
        kind = types[name]
        out[name] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
    return out


def full_rows(settings, seeds, policies, forecasts, oracle_limit: float, only: bool = False) -> list[dict]:
    """Full instances through the matrix code, one worker: the rows evaluation.json would hold. `only`: the
    given policies (and the least-loaded reference), without the interruptible settings' extras."""
    matrix = Matrix(
        tuple(Cell(s, seed, tuple(forecasts)) for s in settings for seed in seeds),
        policies=tuple(dict.fromkeys([AGNOSTIC_REFERENCE, *policies])),
        oracle_time_limit_s=oracle_limit,
        interruptible_extras=not only,
    )
    began, total, done = time.perf_counter(), len(tasks_of(matrix)), [0]

    def progress(task, _):
        done[0] += 1
        what = "oracle" if task.kind == "oracle" else f"{task.policy}/{task.forecast}"
        print(
            f"[{done[0]}/{total}] {time.perf_counter() - began:7.1f}s load {os.getloadavg()[0]:.2f} "
            f"{task.setting.name} seed {task.seed} {what}",
            file=sys.stderr,
            flush=True,
        )

    return rows_of(run_matrix(matrix, workers=1, progress=progress))


def code_commit() -> str:
    """The commit of the code this process runs, read when it starts (a checkout may move on during a long
    run) and from the project's own directory (the run may start elsewhere); "+changes" when the tree differs."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        try:
            done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return "no git"
    return commit + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def write_full(rows: list[dict], prefix: Path, meta: dict) -> None:
    prefix.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{prefix}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n", "utf-8")
    head = [
        "# Evaluation: interruptible jobs",
        "",
        f"Command: `{meta['command']}`; code {meta['code']}; {meta['wall_minutes']:.1f} min on {meta['cpus']} "
        f"cores, load average (1 min) {meta['load_start']:.2f} at the start and {meta['load_end']:.2f} at the end.",
        "",
    ]
    Path(f"{prefix}.md").write_text("\n".join(head + interruptible_lines(rows)), "utf-8")


def combine_runs(paths: list[Path], out: Path) -> None:
    """Rows of several --full runs (or of files this wrote) in one file and report; each run's meta is kept,
    under "runs"."""
    rows: dict[tuple, dict] = {}
    metas = []
    for path in paths:
        data = json.loads(path.read_text(encoding="utf-8"))
        # A file this function wrote holds its runs' metas: combining it again keeps them.
        metas.extend(data["runs"] if "runs" in data else [data["meta"]])
        for r in data["rows"]:
            rows[(r["setting"], r["seed"], r["policy"], r["forecast"])] = r
    merged = list(rows.values())
    out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{out}.json").write_text(json.dumps({"runs": metas, "rows": merged}, indent=1) + "\n", "utf-8")
    head = [
        "# Evaluation: interruptible jobs",
        "",
        "Measured by these runs (each row comes from the last that has it):",
        "",
    ]
    head += [
        f"- `{m['command']}`: code {m['code']}, {m['wall_minutes']:.1f} min on {m['cpus']} cores, load average "
        f"(1 min) {m['load_start']:.2f} at the start, {m['load_end']:.2f} at the end"
        for m in metas
    ]
    Path(f"{out}.md").write_text("\n".join([*head, "", *interruptible_lines(merged)]), "utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--settings", help="comma-separated, e.g. default/slack3/load50 (required but with --combine)"
    )
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--forecasts", default="perfect,dacf")
    parser.add_argument("--policies", default="caspian")
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--span-hours", type=float, default=72.0)
    parser.add_argument("--max-runtime-hours", type=float, default=12.0)
    parser.add_argument("--oracle-limit", type=float, default=120.0)
    parser.add_argument("--week", action="store_true", help="full committed instances, no oracle solve")
    parser.add_argument(
        "--hub",
        action="append",
        default=[],
        help="a hub setting override, name=value (repeatable): every run of --week, our CASPIAN's in medium cells",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="medium cells: our CASPIAN once per variant (repeatable), each comma-separated name=value "
        "overrides on top of --hub ('' for --hub alone), against one oracle",
    )
    parser.add_argument("--full", action="store_true", help="full instances with their oracle (one worker)")
    parser.add_argument("--out", type=Path, help="with --full: write <out>.json and <out>.md")
    parser.add_argument("--only", action="store_true", help="with --full: no Wait AWhile/one-piece extras")
    parser.add_argument(
        "--combine",
        help="comma-separated <out>.json files of --full runs: their rows (a later file's replace an earlier "
        "one's for the same setting, seed, policy, forecast) written to --out",
    )
    args = parser.parse_args(argv)
    if args.combine:
        if not args.out:
            parser.error("--combine needs --out")
        combine_runs([Path(p) for p in args.combine.split(",")], args.out)
        return 0
    if not args.settings:
        parser.error("--settings is required")
    policies, forecasts = args.policies.split(","), args.forecasts.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    matrix = Matrix(
        (),
        jobs=args.jobs,
        span_hours=args.span_hours,
        max_runtime_s=args.max_runtime_hours * 3600,
        oracle_time_limit_s=args.oracle_limit,
    )
    if args.full:
        began, load, code = time.perf_counter(), os.getloadavg()[0], code_commit()
        settings = [Setting.parse(name) for name in args.settings.split(",")]
        rows = full_rows(settings, seeds, policies, forecasts, args.oracle_limit, args.only)
        for r in rows:
            print(json.dumps(r), flush=True)
        if args.out:
            meta = {
                "command": " ".join(
                    ["python -m bench.evaluate_cells", *(argv if argv is not None else sys.argv[1:])]
                ),
                "code": code,
                "cpus": os.cpu_count(),
                "wall_minutes": (time.perf_counter() - began) / 60,
                "load_start": load,
                "load_end": os.getloadavg()[0],
            }
            write_full(rows, args.out, meta)
        return 0
    committed = json.loads(COMMITTED.read_text(encoding="utf-8")) if args.week else []
    for name in args.settings.split(","):
        for seed in seeds:
            setting = Setting.parse(name)
            if args.week:
                cell = week_cell(setting, seed, policies, forecasts, committed, hub_overrides(args.hub))
            else:
                base = hub_overrides(args.hub)
                variants = [
                    {**base, **hub_overrides([p for p in v.split(",") if p])} for v in args.variant
                ] or [base]
                cell = medium_cell(matrix, setting, seed, policies, forecasts, variants)
            print(json.dumps(cell), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
