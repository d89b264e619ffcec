"""The regret decomposition adds up, and the report names the tuning seeds apart from the reported ones."""

from __future__ import annotations

import pytest

from bench.evaluation.matrix import full_matrix
from bench.evaluation.regret import decomposition, markdown_lines
from bench.evaluation.report import goal_checks


def ours(seed: int, forecast: str, kg: float, oracle: float = 10.0, bound: float = 9.5) -> dict:
    agnostic = 20.0
    return {
        "setting": "default/slack3/load50",
        "seed": seed,
        "policy": "caspian",
        "forecast": forecast,
        "emitted_with_unrun_kg": kg,
        "agnostic_kg": agnostic,
        "oracle_kg": oracle,
        "oracle_bound_kg": bound,
        "oracle_exact": bound == oracle,
        "oracle_capture_pct": 100 * (agnostic - kg) / (agnostic - oracle),
        "bound_capture_pct": 100 * (agnostic - kg) / (agnostic - bound),
        "deadline_met_frac": 1.0,
        "not_run_feasible": 0,
        "late_jobs": 0,
    }


def test_the_terms_add_up_to_the_regret_against_the_bound():
    rows = [ours(0, "perfect", 10.3), ours(0, "dacf", 10.8), ours(1, "perfect", 10.1, bound=10.0)]
    rows.append(ours(1, "dacf", 10.5, bound=10.0))
    [entry] = decomposition(rows)
    assert entry["seeds"] == [0, 1]
    assert entry["forecast_kg"] == pytest.approx((0.5 + 0.4) / 2)
    assert entry["arrival_kg"] == pytest.approx((0.3 + 0.1) / 2)
    assert entry["gap_kg"] == pytest.approx((0.5 + 0.0) / 2)
    regret = ((10.8 - 9.5) + (10.5 - 10.0)) / 2
    assert entry["forecast_kg"] + entry["arrival_kg"] + entry["gap_kg"] == pytest.approx(regret)
    # In points of the oracle's saving (10 kg): 5 and 4 points of forecast loss, 3 and 1 of arrival loss.
    assert entry["forecast_pts"] == pytest.approx(4.5)
    assert entry["arrival_pts"] == pytest.approx(2.0)
    assert entry["capture"] == pytest.approx((92.0 + 95.0) / 2)
    text = "\n".join(markdown_lines(rows))
    assert "Tuning seeds" in text and "10-17" in text and "0, 1, 2, 3, 4" in text


def test_stress_forecasts_have_no_capture_goal_but_must_beat_the_baselines():
    greedy = {**ours(0, "persistence", 11.0), "policy": "greedy_carbon"}
    checks = goal_checks([ours(0, "persistence", 11.5), greedy])
    assert not [c for c in checks if c["goal"].startswith("captures")]
    [below] = [c for c in checks if c["goal"].startswith("emits less")]
    assert below["met"] is False and "greedy" in below["measured"]


def test_the_full_matrix_has_the_robustness_settings_once_per_instance():
    cells = full_matrix().cells
    keys = [(c.setting.name, c.seed) for c in cells]
    assert len(keys) == len(set(keys))
    forecasts = {(c.setting.name, c.seed): c.forecasts for c in cells}
    assert forecasts[("default/slack3/load50", 0)] == (
        "perfect",
        "dacf",
        "dacf+est",
        "dacf2x",
        "dacf2x+est",
        "persistence",
    )
    assert forecasts[("default/slack3/load50", 1)] == ("perfect", "dacf")
    assert forecasts[("dayahead/slack3/load50", 0)] == ("perfect", "dacf", "real", "real+est")
    assert ("solarwind/slack3/load50", 0) in forecasts
