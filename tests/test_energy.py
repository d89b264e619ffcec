import pytest

from services.common.energy import DEFAULT_POWER, GIB, Power, energy_wh, grams


def test_explicit_per_core_model():
    power = Power(watts_per_core=10, watts_per_gpu=200, watts_per_gib=1, pue=1.5)
    # 2 cores x 10 + 1 GPU x 200 + 4 GiB x 1 = 224 W, x1.5 PUE = 336 W, for 30 min = 168 Wh
    assert energy_wh(2000, 4 * GIB, 1, 1800, power) == pytest.approx(168.0)


def test_linear_model_slope_from_idle_and_peak():
    power = Power(idle_watts=100, peak_watts=420)
    # slope (420-100)/32 cores = 10 W per core; 4 cores for 1 h = 40 Wh
    assert energy_wh(4000, 0, 0, 3600, power, capacity_cpu_millis=32000) == pytest.approx(40.0)


def test_default_power_when_unset_and_grams():
    wh = energy_wh(1000, 0, 0, 3600, Power())
    assert wh == pytest.approx(DEFAULT_POWER.watts_per_core * DEFAULT_POWER.pue)
    assert grams(1000.0, 400.0) == pytest.approx(400.0)
