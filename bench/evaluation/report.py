"""evaluation.json, evaluation.md and the plots (matplotlib, Agg)."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import mean

from .capture import capture_goal
from .carbon import true_trace
from .interruptible import INTERRUPTIBLE_POLICIES
from .matrix import AGNOSTIC_REFERENCE, POLICIES, PRIMARY, Results
from .regret import forecast_rank
from .regret import markdown_lines as regret_lines
from .report_interruptible import markdown_lines as interruptible_lines
from .workload import Instance

POLICY_LABELS = {
    "round_robin": "round-robin",
    "least_loaded": "least-loaded",
    "greedy_carbon": "greedy lowest-carbon-now",
    "temporal_only": "temporal-only",
    "ibm_caspian": "IBM CASPIAN",
    "caspian": "our CASPIAN",
    "wait_awhile": "Wait AWhile",
    "caspian_one_piece": "our CASPIAN, one piece",
    "oracle": "offline oracle",
}
BASELINES = ("round_robin", "least_loaded", "greedy_carbon", "temporal_only", "ibm_caspian", "wait_awhile")
# Issue 20's goals: perfect forecasts >= 97%, dacf and real forecasts (and their estimates) >= 94%. The
# stress modes (dacf2x, persistence) have no capture goal: there only "below every baseline" is asked.
CAPTURE_GOAL = {"perfect": 97.0, "dacf": 94.0, "dacf+est": 94.0, "real": 94.0, "real+est": 94.0}


def dumps(rows: list[dict]) -> str:
    return json.dumps(rows, indent=1, sort_keys=False) + "\n"


def write_json(rows: list[dict], path: Path) -> None:
    path.write_text(dumps(rows), encoding="utf-8")


# -- goals ---------------------------------------------------------------------------------------------------


def goal_checks(rows: list[dict]) -> list[dict]:
    """Each goal of the issue, per (setting, seed, forecast): measured value and whether it holds."""
    by_cell: dict[tuple, dict[str, dict]] = defaultdict(dict)
    for r in rows:
        by_cell[(r["setting"], r["seed"], r["forecast"])][r["policy"]] = r
    checks = []
    for (setting, seed, forecast), policies in by_cell.items():
        ours = policies.get("caspian")
        if ours is None:
            continue
        goal = CAPTURE_GOAL.get(forecast)
        if goal is not None:
            measured, met = capture_goal(ours, goal)
            checks.append(
                {
                    "goal": "captures >= 97% (perfect forecasts) / 94% (dacf, real forecasts) of the oracle's "
                    "saving",
                    "setting": setting,
                    "seed": seed,
                    "forecast": forecast,
                    "measured": measured,
                    "met": met,
                }
            )
        met = ours["deadline_met_frac"]
        checks.append(
            {
                "goal": "meets 100% of deadlines the oracle can meet",
                "setting": setting,
                "seed": seed,
                "forecast": forecast,
                "measured": (
                    f"{100 * met:.2f}% ({ours['not_run_feasible']} not run, {ours['late_jobs']} late)"
                    if met is not None
                    else "n/a"
                ),
                "met": met is not None and met >= 1.0,
            }
        )
        # Compared with dropped jobs charged at their carbon-agnostic emissions (see metrics.py).
        key = "emitted_with_unrun_kg"
        others = {p: policies[p][key] for p in BASELINES if p in policies}
        worse = [p for p, kg in others.items() if kg <= ours[key]]
        best_other = min(others, key=others.get) if others else None
        checks.append(
            {
                "goal": "emits less than IBM CASPIAN and every baseline",
                "setting": setting,
                "seed": seed,
                "forecast": forecast,
                "measured": (
                    f"{ours[key]:.3f} kg vs best other {others[best_other]:.3f} kg "
                    f"({POLICY_LABELS[best_other]})"
                    if best_other
                    else "n/a"
                )
                + (f"; not below {', '.join(POLICY_LABELS[p] for p in worse)}" if worse else ""),
                "met": not worse,
            }
        )
    return checks


# -- markdown ------------------------------------------------------------------------------------------------


def _fmt(value, spec: str = ".3f", suffix: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:{spec}}{suffix}"


def _avg(rows: list[dict], key: str):
    values = [r[key] for r in rows if r.get(key) is not None]
    return mean(values) if values else None


def _span(rows: list[dict], key: str, spec: str, suffix: str = "") -> str:
    values = [r[key] for r in rows if r.get(key) is not None]
    if not values:
        return "n/a"
    text = f"{mean(values):{spec}}{suffix}"
    if len(values) > 1 and max(values) - min(values) > 0:
        text += f" ({min(values):{spec}}–{max(values):{spec}})"
    return text


def markdown(rows: list[dict], results: Results | None, meta: dict) -> str:
    lines = ["# Evaluation: every policy through the real hub, a week of real grid data and job arrivals", ""]
    lines += [
        f"Generated by `{meta.get('command', 'make evaluate')}` on {meta.get('cpus', '?')} cores in "
        f"{meta.get('wall_minutes', 0):.1f} min ({meta.get('runs', 0)} hub runs, {meta.get('oracles', 0)} oracle "
        f"solves; code {meta.get('code', 'unknown')}). Method, definitions and analysis: `docs/evaluation.md`.",
        "",
        "Figures per (setting, policy, forecast) are means over the seeds run for that setting (min–max in "
        "brackets when seeds differ). kgCO2 is always measured on the true trace. `saved` is against the "
        "carbon-agnostic least-loaded run; `capture` is the share of the oracle's saving; `deadline met` "
        "counts jobs the oracle can place; `delay` is (start - arrival) / slack.",
        "",
    ]
    broken = [r for r in rows if r.get("fallback_cycles") or r.get("optimizer_errors")]
    if broken:
        lines += [
            f"**Warning: in {len(broken)} runs the optimizer raised and the hub's greedy fallback placed jobs; "
            "those rows are not the policy's figures (see `notes` in the JSON).**",
            "",
        ]
    checks = goal_checks(rows)
    lines += ["## Goals, as measured", ""]
    for goal in dict.fromkeys(c["goal"] for c in checks):
        group = [c for c in checks if c["goal"] == goal]
        held = sum(c["met"] for c in group)
        lines.append(f"- **{goal}**: held in {held} of {len(group)} (setting, seed, forecast) runs.")
    lines += [
        "",
        "Where the oracle was not proven optimal in its time limit, a capture goal counts as held only if it "
        "also holds against the oracle's lower bound.",
    ]
    misses = [c for c in checks if not c["met"]]
    if misses:
        lines += [
            "",
            "Misses:",
            "",
            "| goal | setting | seed | forecast | measured |",
            "|---|---|---|---|---|",
        ]
        for c in misses:
            lines.append(
                f"| {c['goal']} | {c['setting']} | {c['seed']} | {c['forecast']} | {c['measured']} |"
            )
    lines.append("")

    settings = list(dict.fromkeys(r["setting"] for r in rows))
    for setting in settings:
        srows = [r for r in rows if r["setting"] == setting]
        seeds = sorted({r["seed"] for r in srows})
        weeks = sorted({r["week_start"] for r in srows})
        first = srows[0]
        oracle_rows = [r for r in srows if r["policy"] == "oracle" and r["forecast"] == srows[0]["forecast"]]
        exact = all(r["oracle_exact"] for r in oracle_rows)
        lines += [
            f"## {setting}",
            "",
            f"Seeds {', '.join(map(str, seeds))} (weeks starting {', '.join(weeks)}); clusters "
            f"{', '.join(f'{k} {v}' for k, v in first['cluster_cpus'].items())} CPUs; {first['jobs']} jobs, of "
            f"which {_fmt(_avg(oracle_rows, 'off_grid_jobs'), '.1f')} on average have less slack than the wait "
            "for the next 15-minute boundary: the hub starts them at once, off the grid, and the oracle places "
            "them at their arrival on the cluster it chooses. They are in every column, and `off-grid met` "
            "counts them apart"
            + (
                f"; the oracle cannot place {_fmt(_avg(oracle_rows, 'oracle_unplaced'), '.1f')} jobs, which are "
                "left out of every column"
                if any(r["oracle_unplaced"] for r in oracle_rows)
                else ""
            )
            + ". Oracle: "
            + (
                "solved to optimality (gap <= 0.01%)."
                if exact
                else "not proven optimal in its time limit; its true lower bound is "
                f"{_fmt(_avg(oracle_rows, 'oracle_bound_kg'))} kg (capture against the bound: see JSON "
                "`bound_capture_pct`)."
            ),
            "",
            "| policy | forecast | kgCO2 | saved vs agnostic | oracle capture | deadline met | late/not run "
            "| delay/slack | off-grid met | solve p50 s | solve p99 s |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
        for r in srows:
            # The oracle knows the future whatever the forecast: one line, under "perfect knowledge".
            forecast = "perfect knowledge" if r["policy"] == "oracle" else r["forecast"]
            if r["policy"] != "oracle" or r["forecast"] == srows[0]["forecast"]:
                groups[(r["policy"], forecast)].append(r)
        order = [*POLICIES, *INTERRUPTIBLE_POLICIES, "oracle"]
        for (policy, forecast), group in sorted(
            groups.items(),
            key=lambda kv: (
                forecast_rank(kv[0][1]) if kv[0][1] != "perfect knowledge" else 99,
                order.index(kv[0][0]),
            ),
        ):
            met = [{"v": 100 * r["deadline_met_frac"]} for r in group if r["deadline_met_frac"] is not None]
            lines.append(
                f"| {POLICY_LABELS[policy]} | {forecast} | {_span(group, 'emitted_kg', '.3f')} "
                f"| {_span(group, 'saved_pct', '.1f', '%')} | {_span(group, 'oracle_capture_pct', '.1f', '%')} "
                f"| {_span(met, 'v', '.2f', '%')} "
                f"| {_fmt(_avg(group, 'late_jobs'), '.1f')}/{_fmt(_avg(group, 'not_run_feasible'), '.1f')} "
                f"| {_span(group, 'mean_delay_frac', '.2f')} "
                f"| {_fmt(_avg(group, 'off_grid_met'), '.1f')}/{_fmt(_avg(group, 'off_grid_jobs'), '.1f')} "
                f"| {_fmt(_avg(group, 'solve_p50_s'), '.3f')} | {_fmt(_avg(group, 'solve_p99_s'), '.3f')} |"
            )
        lines.append("")
    lines += regret_lines(rows)
    lines += interruptible_lines(rows)
    return "\n".join(lines) + "\n"


# -- plots ---------------------------------------------------------------------------------------------------


def plot_emissions(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = list(dict.fromkeys(r["setting"] for r in rows))
    cols = min(len(settings), 3 if len(settings) <= 9 else 4)
    nrows = -(-len(settings) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.4 * nrows), squeeze=False)
    policies = [*POLICIES, "oracle"]
    for ax, setting in zip(axes.flat, settings, strict=False):
        srows = [r for r in rows if r["setting"] == setting]
        for k, forecast in enumerate(("perfect", "dacf")):
            values = []
            for policy in policies:
                group = [
                    r["emitted_kg"] for r in srows if r["policy"] == policy and r["forecast"] == forecast
                ]
                values.append(mean(group) if group else 0.0)
            xs = [i + (k - 0.5) * 0.38 for i in range(len(policies))]
            ax.bar(xs, values, width=0.38, label=forecast, color=("#4477aa", "#ee8866")[k])
        ax.set_title(setting, fontsize=9)
        ax.set_xticks(range(len(policies)))
        ax.set_xticklabels([POLICY_LABELS[p] for p in policies], rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("kgCO2", fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
        low = min(r["emitted_kg"] for r in srows)
        high = max(r["emitted_kg"] for r in srows)
        ax.set_ylim(max(0.0, low - 0.15 * (high - low + 1e-9)), high + 0.05 * (high - low + 1e-9))
    for ax in list(axes.flat)[len(settings) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7, title="forecast", title_fontsize=7)
    fig.suptitle("Emissions per policy (true trace; mean over seeds)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_day(results: Results, instance: Instance, path: Path, day: int = 2) -> None:
    """Cores in use per cluster over one day, our CASPIAN against least-loaded, over each zone's intensity."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    setting, seed = instance.setting, instance.seed
    ours = results.run(setting, seed, "caspian", "perfect")
    agnostic = results.run(setting, seed, AGNOSTIC_REFERENCE, "perfect")
    if ours is None or agnostic is None:
        return
    t0 = instance.start + timedelta(days=day)
    step = 300
    times = [t0.timestamp() + i * step for i in range(86400 // step + 1)]
    specs = {j.id: j for j in instance.jobs}

    def cores(run, cluster: str) -> list[float]:
        spans = [
            (o.start, o.end, specs[o.id].cpus)
            for o in run.outcomes.values()
            if o.cluster == cluster and o.start is not None and o.end is not None
        ]
        return [sum(c for a, b, c in spans if a <= t < b) for t in times]

    fig, axes = plt.subplots(
        len(instance.clusters), 1, figsize=(10, 2.3 * len(instance.clusters)), sharex=True
    )
    hours = [(t - t0.timestamp()) / 3600 for t in times]
    for ax, cluster in zip(axes, instance.clusters, strict=True):
        trace = true_trace(cluster.zone, seed)
        intensity = [trace.value_at(datetime.fromtimestamp(t, UTC)) for t in times]
        ax.fill_between(
            hours, cores(ours, cluster.name), step="post", alpha=0.55, color="#228833", label="our CASPIAN"
        )
        ax.step(
            hours, cores(agnostic, cluster.name), where="post", color="#555555", lw=1.0, label="least-loaded"
        )
        ax.axhline(cluster.cores, color="#999999", lw=0.6, ls=":")
        ax.set_ylabel(f"{cluster.name}\ncores", fontsize=8)
        twin = ax.twinx()
        twin.plot(hours, intensity, color="#cc3311", lw=1.2, label="intensity")
        twin.set_ylabel("gCO2/kWh", fontsize=8, color="#cc3311")
        ax.set_title(f"{cluster.zone}", fontsize=9, loc="left")
    axes[0].legend(loc="upper left", fontsize=7)
    axes[-1].set_xlabel(f"hours after {t0:%Y-%m-%d %H:%M} UTC")
    fig.suptitle(f"One day of placements ({setting.name}, seed {seed}, perfect forecasts)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_all(
    rows: list[dict], results: Results, out: Path, prefix: str, meta: dict, plots: bool
) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    json_path = out / f"{prefix}.json"
    write_json(rows, json_path)
    written.append(json_path)
    md_path = out / f"{prefix}.md"
    md_path.write_text(markdown(rows, results, meta), encoding="utf-8")
    written.append(md_path)
    if plots:
        emissions = out / f"{prefix}.emissions.png"
        plot_emissions(rows, emissions)
        written.append(emissions)
        cell = next((c for c in results.matrix.cells if c.setting == PRIMARY), results.matrix.cells[0])
        day = out / f"{prefix}.day.png"
        instance = results.matrix.instance(cell.setting, cell.seed)
        last_arrival = max(j.arrival for j in instance.jobs) - instance.start.timestamp()
        plot_day(results, instance, day, day=2 if last_arrival > 3 * 86400 else 0)
        written.append(day)
    return written
