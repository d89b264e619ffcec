"""Forecast skill measured online (services/hub/scheduling/forecast_skill.py): forecasts scored against the
actuals that followed, by lead; a poor forecast's far slots planned toward the intensity now."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime, timedelta

import pytest

from services.common.timeconv import to_timestamp
from services.hub.ports import IntensitySample
from services.hub.scheduling.forecast_skill import (
    ForecastSkill,
    actual_over,
    bucket_of,
    latest_actual,
    measure_and_blend,
)
from tests.hub.conftest import START

HOUR = 3600.0
SLOT = 900.0
T0 = datetime(2023, 3, 1, tzinfo=UTC).timestamp()


def truth(t: float) -> float:
    """A daily curve, clean at noon UTC."""
    return 400.0 + 100.0 * math.cos(2 * math.pi * (t / 86400.0 - 0.5))


def samples(lo: float, hi: float, value=truth) -> list[IntensitySample]:
    t = math.floor(lo / HOUR) * HOUR
    out = []
    while t < hi:
        out.append(IntensitySample(datetime.fromtimestamp(t, UTC), HOUR, value(t)))
        t += HOUR
    return out


def run(skill: ForecastSkill, forecast, hours: int, zone: str = "KR") -> None:
    """`hours` of hourly cycles: each scores what came due and records `forecast(issued, slot start)` on a
    48-hour grid of 15-minute slots."""
    for h in range(hours):
        now = T0 + h * HOUR
        lo, hi = skill.history_span(zone, now)
        values = [forecast(now, now + i * SLOT) for i in range(192)]
        skill.observe(zone, now, samples(lo, hi), values, now, SLOT)


def test_buckets_and_actuals():
    assert [bucket_of(h * HOUR) for h in (0, 2.9, 3, 11, 12, 30, 60)] == [0, 0, 1, 2, 3, 4, 5]
    assert bucket_of(-5.0) == 0
    rows = samples(T0, T0 + 3 * HOUR, lambda t: 100.0 if t < T0 + HOUR else 200.0)
    assert actual_over(rows, T0 + 0.5 * HOUR, T0 + 1.5 * HOUR) == pytest.approx(150.0)
    assert actual_over(rows, T0 + 2.5 * HOUR, T0 + 4 * HOUR) is None  # not covered yet
    assert latest_actual(rows, T0 + 1.2 * HOUR) == 200.0
    assert latest_actual(rows, T0 - 1) is None


def test_a_perfect_forecast_is_trusted_exactly_and_planned_as_it_is():
    skill = ForecastSkill()
    run(skill, lambda issued, t: truth(t), 72)
    assert skill.weights("KR") == [1.0] * 6
    values = [truth(T0 + 72 * HOUR + i * SLOT) for i in range(192)]
    assert skill.blend("KR", values, T0 + 72 * HOUR, SLOT, T0 + 72 * HOUR) == values


def test_a_forecast_whose_changes_never_come_is_planned_at_the_intensity_now():
    # The forecast predicts a daily swing; the actual is flat.
    skill = ForecastSkill()
    flat = 450.0

    def forecast(issued, t):
        return truth(t)

    for h in range(72):
        now = T0 + h * HOUR
        lo, hi = skill.history_span("KR", now)
        skill.observe(
            "KR",
            now,
            samples(lo, hi, lambda t: flat),
            [forecast(now, now + i * SLOT) for i in range(192)],
            now,
            SLOT,
        )
    weights = skill.weights("KR")
    assert weights[:5] == [0.0] * 5  # scored at every lead up to 48 h
    now = T0 + 72 * HOUR
    blended = skill.blend("KR", [forecast(now, now + i * SLOT) for i in range(192)], now, SLOT, now)
    assert blended == pytest.approx([flat] * 192)


def test_a_third_of_each_predicted_change_coming_true_earns_a_third_of_the_trust():
    # Every predicted change (from the latest measured intensity, the hour before) is three times the change
    # that comes: worse than persistence, so planned on the least-squares blend.
    skill = ForecastSkill(min_samples=10)
    run(skill, lambda issued, t: truth(issued - HOUR) + 3 * (truth(t) - truth(issued - HOUR)), 24 * 5)
    weights = skill.weights("KR")
    assert weights[:5] == [0.33] * 5, weights
    # The blend keeps the anchor (latest actual) and scales each slot's predicted change.
    now = T0 + 119 * HOUR  # the last cycle
    anchor = truth(now - HOUR)  # the latest measured hour
    blended = skill.blend("KR", [600.0] * 8, now, SLOT, now)
    assert blended == pytest.approx([anchor + weights[0] * (600.0 - anchor)] * 8)


def test_a_forecast_that_beats_persistence_is_planned_on_as_served():
    # Predicted changes 1.8 times too large: slope 0.56, a smaller squared error than persistence's.
    skill = ForecastSkill(min_samples=10)
    run(skill, lambda issued, t: truth(issued - HOUR) + 1.8 * (truth(t) - truth(issued - HOUR)), 24 * 5)
    assert skill.weights("KR") == [1.0] * 6
    values = [600.0, 300.0]
    assert skill.blend("KR", values, T0, SLOT, T0) == values


def test_untrusted_until_enough_samples_and_a_new_zone_is_left_alone():
    skill = ForecastSkill(min_samples=1000)
    run(skill, lambda issued, t: 800.0, 48)
    assert skill.weights("KR") == [1.0] * 6
    assert skill.blend("JP-TK", [1.0, 2.0], T0, SLOT, T0) == [1.0, 2.0]  # no anchor: unchanged


def test_old_samples_leave_the_window_and_trust_returns():
    skill = ForecastSkill(window_seconds=24 * HOUR, min_samples=10)
    for h in range(96):
        now = T0 + h * HOUR
        lo, hi = skill.history_span("KR", now)
        # A bad forecast for the first day and a half, a perfect one after.
        bad = h < 36
        values = [(800.0 if bad else truth(now + i * SLOT)) for i in range(192)]
        skill.observe("KR", now, samples(lo, hi), values, now, SLOT)
        if h == 36:
            assert skill.weights("KR")[0] < 0.5
    assert skill.weights("KR")[:2] == [1.0, 1.0]
    # Nothing pending is older than the window.
    assert min(p.start for i in skill._pending["KR"] for p in i.points) >= T0 + 95 * HOUR - 24 * HOUR


def test_records_at_most_once_per_issue_period():
    skill = ForecastSkill()
    for k in range(8):  # two hours of 15-minute cycles
        now = T0 + k * SLOT
        skill.observe("KR", now, samples(now - HOUR, now), [400.0] * 192, now, SLOT)
        if k == 0:  # hourly points from the issue on: 48 of a 48-hour grid
            assert [p.start for p in skill._pending["KR"][0].points] == [T0 + h * HOUR for h in range(48)]
    assert [i.issued for i in skill._pending["KR"]] == [T0, T0 + HOUR]
    # The points whose slots have passed were scored and left the queue.
    assert skill._pending["KR"][0].points[0].start == T0 + 2 * HOUR


class _Port:
    def __init__(self, fail: set[str] = frozenset()):
        self.fail = fail
        self.calls: list[str] = []

    async def forecast(self, *args):  # pragma: no cover - not used here
        raise NotImplementedError

    async def history(self, zone, start, end):
        self.calls.append(zone)
        if zone in self.fail:
            raise RuntimeError("history unavailable")
        return samples(start.timestamp(), end.timestamp(), lambda t: 450.0)


async def test_measure_and_blend_reads_history_records_fresh_zones_and_notes_distrust():
    skill = ForecastSkill(min_samples=5)
    port = _Port(fail={"CN"})
    series = {"KR": [truth(T0 + i * SLOT) for i in range(192)], "CN": [500.0] * 192}
    for h in range(30):
        now = datetime.fromtimestamp(T0 + h * HOUR, UTC)
        series = {"KR": [truth(now.timestamp() + i * SLOT) for i in range(192)], "CN": [500.0] * 192}
        blended, notes = await measure_and_blend(skill, port, series, {"KR", "CN"}, now, SLOT, now)
    assert set(port.calls) == {"KR", "CN"}
    assert skill.weights("CN") == [1.0] * 6  # its history failed: nothing measured, nothing changed
    assert blended["CN"] == series["CN"]
    assert skill.weights("KR")[0] == 0.0  # the actual is flat: the swing never came
    assert blended["KR"][5] == pytest.approx(450.0)
    assert any(n.startswith("forecast skill KR:") for n in notes)
    # A preview (record=False) reads nothing and blends with what was measured.
    calls = len(port.calls)
    again, _ = await measure_and_blend(skill, port, series, {"KR"}, now, SLOT, now, record=False)
    assert len(port.calls) == calls and again == blended


async def test_the_hub_blends_only_when_asked(harness):
    """Over real gRPC: the fake carbon service's forecast predicts a swing its history never shows; with
    forecast_skill on, after a day of cycles the far slots sent to the optimizer are planned at the
    intensity now."""
    fakes = harness.fakes
    await harness.register_clusters()
    fakes.carbon.profile = {"KR": truth}
    fakes.carbon.history_value = {"KR": lambda t: 450.0}
    config = harness.hub.scheduler.config
    assert config.forecast_skill is False  # the default
    harness.hub.scheduler.config = dataclasses.replace(config, forecast_skill=True)
    skill = harness.hub.scheduler.carbon.skill
    skill.min_samples = 6
    for h in range(30):
        # A job a cycle, due in 20 to 23 hours, so that every cycle has one to plan.
        later = harness.clock.now() + timedelta(hours=20)
        await harness.submit(id=f"job-{h}", earliest_start=to_timestamp(later), deadline_in=int(23 * HOUR))
        await harness.cycle()
        harness.clock.advance(HOUR)
    await harness.cycle()
    request = fakes.optimizer.requests[-1]
    kr = list(next(f for f in request.forecasts if f.cluster == "carbon-kr").gco2_per_kwh)
    jp = list(next(f for f in request.forecasts if f.cluster == "carbon-jp").gco2_per_kwh)
    assert skill.weights("KR")[:3] == [0.0] * 3
    assert kr[: 4 * 12] == pytest.approx([450.0] * 48)
    assert jp == pytest.approx([500.0] * len(jp))  # constant forecast and actual: unchanged
    harness.hub.scheduler.config = config
    await harness.cycle()
    raw = list(
        next(f for f in fakes.optimizer.requests[-1].forecasts if f.cluster == "carbon-kr").gco2_per_kwh
    )
    assert raw != pytest.approx([450.0] * len(raw))  # off again: the forecast as served
    assert START < harness.clock.now()
