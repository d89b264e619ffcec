"""The report's section on interruptible jobs (issue 19): what pausing adds, where it comes from, the goals.

Per interruptible setting (".../int50", ".../int100") and forecast: our CASPIAN with and without using
interruptibility (`caspian`, `caspian_one_piece`: the same jobs submitted without `interruptible`), Wait
AWhile, IBM's CASPIAN, the best other baseline and the segment oracle; the extra saving of pausing, in points
of the carbon-agnostic emissions; the capture of the segment oracle's saving; deadlines met. Then where the
extra saving comes from (segment_figures.py): per job length, and the share of run time in dirty hours.
Goals are reported, not asserted: with every job interruptible, >= 97% (perfect) / >= 93% (forecast error)
of the segment oracle's saving, less than Wait AWhile, IBM and every baseline, 100% of deadlines.
"""

from __future__ import annotations

from collections import defaultdict

from .capture import capture_goal
from .segment_figures import LENGTHS

BASELINES = ("round_robin", "least_loaded", "greedy_carbon", "temporal_only", "ibm_caspian", "wait_awhile")
CAPTURE_GOAL = {"perfect": 97.0}
CAPTURE_GOAL_WITH_ERROR = 93.0


def _kg(row: dict | None) -> str:
    return "-" if row is None else f"{row['emitted_with_unrun_kg']:.3f}"


def _bound(row: dict | None) -> str:
    return "-" if row is None else f"{row['oracle_bound_kg']:.3f}"


def _pct(value: float | None, digits: str = ".1f") -> str:
    return "-" if value is None else f"{value:{digits}}%"


def cells(rows: list[dict]) -> dict[tuple[str, int, str], dict[str, dict]]:
    """(setting, seed, forecast) -> policy -> row, for the interruptible settings only."""
    out: dict[tuple[str, int, str], dict[str, dict]] = defaultdict(dict)
    for r in rows:
        if "/int" in r["setting"]:
            out[(r["setting"], r["seed"], r["forecast"])][r["policy"]] = r
    return out


def goal_lines(key: tuple[str, int, str], policies: dict[str, dict]) -> list[str]:
    setting, seed, forecast = key
    ours = policies.get("caspian")
    if ours is None or not setting.endswith("/int100"):
        return []
    lines = []
    goal = CAPTURE_GOAL.get(forecast, CAPTURE_GOAL_WITH_ERROR)
    measured, met = capture_goal(ours, goal)
    lines.append(
        f"- {setting} seed {seed} {forecast}: captures >= {goal:.0f}% of the segment oracle's saving: "
        f"{measured} ({'met' if met else 'NOT met'})"
    )
    others = {p: policies[p]["emitted_with_unrun_kg"] for p in BASELINES if p in policies}
    beaten = [p for p, kg in others.items() if ours["emitted_with_unrun_kg"] < kg]
    missed = sorted(set(others) - set(beaten))
    lines.append(
        f"- {setting} seed {seed} {forecast}: emits less than Wait AWhile, IBM and every baseline: "
        + ("met" if others and not missed else f"NOT met (not below {', '.join(missed) or 'any: none ran'})")
    )
    met = ours["deadline_met_frac"]
    lines.append(
        f"- {setting} seed {seed} {forecast}: 100% of deadlines: "
        + ("n/a" if met is None else f"{100 * met:.2f}% ({'met' if met >= 1.0 else 'NOT met'})")
    )
    one_piece = policies.get("caspian_one_piece")
    if one_piece is not None:
        extra = ours["saved_pct"] - one_piece["saved_pct"]
        lines.append(
            f"- {setting} seed {seed} {forecast}: saving over carbon-agnostic {ours['saved_pct']:.2f}% vs "
            f"{one_piece['saved_pct']:.2f}% in one piece: {extra:+.2f} points from pausing"
        )
    return lines


def markdown_lines(rows: list[dict]) -> list[str]:
    by_cell = cells(rows)
    if not by_cell:
        return []
    lines = [
        "## Interruptible jobs",
        "",
        "kgCO2 on the true trace (unrun work charged at its carbon-agnostic emissions). `one piece` is our "
        "CASPIAN on the same jobs submitted without `interruptible`; `extra` is the saving pausing adds, in "
        "points of the carbon-agnostic emissions; `capture` is against the segment oracle (its lower bound "
        "beside it), for our CASPIAN and for the one-piece run.",
        "",
        "| setting | seed | forecast | least-loaded | Wait AWhile | IBM CASPIAN | best other baseline | one piece "
        "| our CASPIAN | segment oracle (bound) | extra | capture | capture, one piece | deadlines met |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, policies in sorted(by_cell.items()):
        setting, seed, forecast = key
        ours, one_piece = policies.get("caspian"), policies.get("caspian_one_piece")
        others = {
            p: policies[p] for p in BASELINES if p in policies and p not in ("wait_awhile", "ibm_caspian")
        }
        best = min(others.values(), key=lambda r: r["emitted_with_unrun_kg"], default=None)
        extra = ours["saved_pct"] - one_piece["saved_pct"] if ours and one_piece else None
        met = ours["deadline_met_frac"] if ours else None
        best_name = f" ({best['policy']})" if best else ""
        lines.append(
            f"| {setting} | {seed} | {forecast} | {_kg(policies.get('least_loaded'))} "
            f"| {_kg(policies.get('wait_awhile'))} | {_kg(policies.get('ibm_caspian'))} "
            f"| {_kg(best)}{best_name} | {_kg(one_piece)} | **{_kg(ours)}** "
            f"| {_kg(policies.get('oracle'))} ({_bound(policies.get('oracle'))}) "
            f"| {'-' if extra is None else f'{extra:+.2f}'} "
            f"| {_pct(ours['oracle_capture_pct'] if ours else None)} "
            f"| {_pct(one_piece['oracle_capture_pct'] if one_piece else None)} "
            f"| {'-' if met is None else f'{100 * met:.2f}%'} |"
        )
    lines += [
        "",
        "Where the extra saving comes from: our CASPIAN in one piece minus a run that pauses (our CASPIAN, "
        "and the segment oracle), kgCO2 by job length; the share of core-hours run in each zone's dirtiest "
        "quarter of hours, in one piece and pausing:",
        "",
    ]
    names = [name for name, _ in LENGTHS]
    lines += [
        "| setting | seed | forecast | pausing | "
        + " | ".join(names)
        + " | paused jobs | dirty share one piece → pausing |",
        "|---|---|---|---|" + "---|" * len(names) + "---|---|",
    ]
    for key, policies in sorted(by_cell.items()):
        one_piece = policies.get("caspian_one_piece")
        for policy in ("caspian", "oracle"):
            pausing = policies.get(policy)
            if not (pausing and one_piece and "segments" in pausing and "segments" in one_piece):
                continue
            a, b = one_piece["segments"], pausing["segments"]
            diffs = [f"{a['kg_by_length'][n] - b['kg_by_length'][n]:+.3f}" for n in names]
            lines.append(
                f"| {key[0]} | {key[1]} | {key[2]} | {policy} | "
                + " | ".join(diffs)
                + f" | {b['paused_jobs']} "
                f"| {100 * a['dirty_share']:.1f}% → {100 * b['dirty_share']:.1f}% |"
            )
    goals = [line for key, policies in sorted(by_cell.items()) for line in goal_lines(key, policies)]
    if goals:
        lines += ["", "Goals with every job interruptible (reported, not asserted):", "", *goals]
    return [*lines, ""]
