"""The evaluation's carbon port serves what the carbon service's replay would."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

import pytest

from bench.evaluation.carbon import TraceCarbon, error_model, job_grams, true_trace
from bench.evaluation.workload import ClusterSpec, JobSpec
from services.carbon.forecast_error import spreads
from services.carbon.providers.replay import ReplayProvider
from services.carbon.replay import forecast_grid
from services.common.clock import ManualClock
from services.common.energy import energy_wh


@pytest.mark.parametrize("forecast", ["perfect", "dacf"])
@pytest.mark.parametrize("zone", ["KR", "CN", "DE-LU"])
async def test_forecasts_equal_forecast_grid(zone, forecast):
    trace, model = true_trace(zone, 3), error_model(forecast, 3)
    clock = ManualClock(datetime(2023, 5, 1, tzinfo=UTC))
    port = TraceCarbon({zone: trace}, model, clock)
    # Built once: it fits its estimate on the whole trace (0.3 s), and reads the clock at each call.
    provider = ReplayProvider(zone, trace, clock, model)
    rng = random.Random(zone + forecast)
    for _ in range(8):
        now = datetime(2023, 5, 1, tzinfo=UTC) + timedelta(seconds=900 * rng.randrange(0, 3000))
        clock.set(now)
        start = now + timedelta(seconds=900 * rng.randrange(0, 3))
        got = await port.forecast(zone, start, 900, 288)
        want = forecast_grid(
            trace, start, timedelta(seconds=900), 288, issued_at=now, error_model=model, zone=zone
        )
        assert list(got.values) == [p.value for p in want]
        # The spread is what the carbon service's replay provider reports for the same points.
        assert list(got.relative_spread) == spreads(provider.forecast_spread, [p.time for p in want], now)
        assert (max(got.relative_spread) > 0) == (forecast == "dacf")
        # A grid off the trace's hours goes through forecast_grid itself.
        odd = await port.forecast(zone, start + timedelta(seconds=420), 600, 30)
        want = forecast_grid(
            trace,
            start + timedelta(seconds=420),
            timedelta(seconds=600),
            30,
            issued_at=now,
            error_model=model,
            zone=zone,
        )
        assert list(odd.values) == [p.value for p in want]


def test_dacf_forecasts_differ_from_the_truth_but_history_is_the_truth():
    trace = true_trace("KR", 0)
    now = datetime(2023, 3, 1, 0, 15, tzinfo=UTC)
    port = TraceCarbon({"KR": trace}, error_model("dacf", 0), ManualClock(now))
    values = port.forecast_values("KR", now, 900, 96)
    truth = [trace.value_at(now + timedelta(seconds=900 * i)) for i in range(96)]
    assert values[:3] == truth[:3]  # the hour that began before now is measured, not forecast
    assert sum(abs(a - b) for a, b in zip(values, truth, strict=True)) > 0
    start, end = now, now + timedelta(hours=5)
    history = asyncio.run(port.history("KR", start, end))
    assert [s.gco2_per_kwh for s in history] == [s.value for s in trace.steps(start, end)]


def test_job_grams_integrate_the_true_trace():
    trace = true_trace("GB", 0)
    cluster = ClusterSpec("carbon-gb", "GB", 8)
    job = JobSpec("j", 0.0, 5400.0, 2, 10_000.0)
    start = datetime(2023, 7, 1, 10, 30, tzinfo=UTC).timestamp()
    grams = job_grams(job, cluster, trace, start, start + 5400)
    hour_a = trace.value_at(datetime(2023, 7, 1, 10, tzinfo=UTC))
    hour_b = trace.value_at(datetime(2023, 7, 1, 11, tzinfo=UTC))
    wh = energy_wh(2000, job.memory_bytes, 0, 5400, cluster.power, cluster.cpu_millis)
    assert grams == pytest.approx(wh / 1000 * (hour_a * 1800 + hour_b * 3600) / 5400)
