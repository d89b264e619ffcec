"""`bench.evaluate_cells --hub name=value`: hub setting overrides, typed as the setting, unknown names refused."""

from __future__ import annotations

import pytest

from bench.evaluate_cells import hub_overrides, policy_spec


def test_overrides_take_the_settings_types():
    assert hub_overrides(["hedge_far_slots=0.5", "plan_on_estimate=true", "horizon_slots=96"]) == {
        "hedge_far_slots": 0.5,
        "plan_on_estimate": True,
        "horizon_slots": 96,
    }
    assert hub_overrides(["plan_on_estimate=false"]) == {"plan_on_estimate": False}
    assert hub_overrides([]) == {}


def test_an_unknown_setting_is_refused_by_name():
    with pytest.raises(SystemExit, match="hedge_far"):
        hub_overrides(["hedge_far=1"])


def test_a_policy_may_carry_its_own_overrides():
    assert policy_spec("caspian") == ("caspian", {})
    assert policy_spec("caspian@forecast_skill=true@hedge_far_slots=0.5") == (
        "caspian",
        {"forecast_skill": True, "hedge_far_slots": 0.5},
    )
    with pytest.raises(SystemExit, match="nope"):
        policy_spec("caspian@nope=1")
