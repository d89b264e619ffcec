"""Where our CASPIAN's regret against the offline optimum comes from, per setting and forecast.

For one (setting, seed), with A the carbon-agnostic reference, O the oracle's plan, B the oracle's lower bound,
P our run with perfect forecasts and F our run with forecast mode f (kg, dropped work charged as in
`emitted_with_unrun_kg`):

    F - B  =  (F - P)            forecast loss: what not knowing the grid's future cost
           +  (P - O)            arrival loss: what not knowing future jobs cost (with the hub's 1% MIP gap
                                 and its tie-breakers, which the evaluation did not separate from it)
           +  (O - B)            solver gap: how far the oracle's plan may be from optimal (0 when proven)

Each term is reported in kg and in points of the oracle's saving (A - O), the unit of `capture`: the
forecast loss is capture(P) - capture(F), the arrival loss 100 - capture(P).
Seeds are averaged per (setting, forecast).
"""

from __future__ import annotations

from collections import defaultdict
from statistics import mean

from .estimates import TUNING_NOTE

FORECAST_ORDER = (
    "perfect",
    "dacf",
    "dacf+est",
    "real",
    "real+est",
    "dacf2x",
    "dacf2x+est",
    "persistence",
    "persistence+est",
)


def forecast_rank(forecast: str) -> int:
    return FORECAST_ORDER.index(forecast) if forecast in FORECAST_ORDER else len(FORECAST_ORDER)


def decomposition(rows: list[dict]) -> list[dict]:
    """One entry per (setting, forecast other than perfect) with both our runs: the terms above, seed means."""
    ours: dict[tuple[str, int], dict[str, dict]] = defaultdict(dict)
    for r in rows:
        if r["policy"] == "caspian":
            ours[(r["setting"], r["seed"])][r["forecast"]] = r
    per: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for (setting, seed), by_forecast in ours.items():
        perfect = by_forecast.get("perfect")
        if perfect is None or perfect["oracle_capture_pct"] is None:
            continue
        saving = perfect["agnostic_kg"] - perfect["oracle_kg"]
        for forecast, run in by_forecast.items():
            if forecast == "perfect":
                continue
            per[(setting, forecast)].append(
                {
                    "seed": seed,
                    "forecast_kg": run["emitted_with_unrun_kg"] - perfect["emitted_with_unrun_kg"],
                    "arrival_kg": perfect["emitted_with_unrun_kg"] - perfect["oracle_kg"],
                    "gap_kg": perfect["oracle_kg"] - perfect["oracle_bound_kg"],
                    "forecast_pts": perfect["oracle_capture_pct"] - run["oracle_capture_pct"],
                    "arrival_pts": 100.0 - perfect["oracle_capture_pct"],
                    "gap_pts": 100.0 * (perfect["oracle_kg"] - perfect["oracle_bound_kg"]) / saving,
                    "capture": run["oracle_capture_pct"],
                }
            )
    out = []
    for (setting, forecast), seeds in per.items():
        entry = {"setting": setting, "forecast": forecast, "seeds": sorted(s["seed"] for s in seeds)}
        for key in (
            "forecast_kg",
            "arrival_kg",
            "gap_kg",
            "forecast_pts",
            "arrival_pts",
            "gap_pts",
            "capture",
        ):
            entry[key] = mean(s[key] for s in seeds)
        out.append(entry)
    settings = list(dict.fromkeys(e["setting"] for e in out))
    return sorted(out, key=lambda e: (settings.index(e["setting"]), forecast_rank(e["forecast"])))


def markdown_lines(rows: list[dict]) -> list[str]:
    entries = decomposition(rows)
    if not entries:
        return []
    lines = [
        "## Regret decomposition (our CASPIAN)",
        "",
        "Per setting and forecast, seed means: forecast loss = ours with that forecast against ours with "
        "perfect forecasts; arrival loss = ours with perfect forecasts against the oracle (future jobs "
        "unknown; includes the hub's 1% MIP gap); solver gap = the oracle's plan against its lower bound "
        "(0 when proven optimal). In kgCO2 and in points of the oracle's saving (the unit of capture). "
        + TUNING_NOTE,
        "",
        "| setting | forecast | seeds | capture | forecast loss | arrival loss | solver gap |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in entries:
        lines.append(
            f"| {e['setting']} | {e['forecast']} | {', '.join(map(str, e['seeds']))} | {e['capture']:.2f}% "
            f"| {e['forecast_kg']:.3f} kg ({e['forecast_pts']:.2f} pts) "
            f"| {e['arrival_kg']:.3f} kg ({e['arrival_pts']:.2f} pts) "
            f"| {e['gap_kg']:.3f} kg ({e['gap_pts']:.2f} pts) |"
        )
    lines.append("")
    return lines
