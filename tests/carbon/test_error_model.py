"""The empirical forecast-error model: deterministic per (zone, slot), faithful to the bundled profile."""

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import fmean

import pytest
from google.protobuf.duration_pb2 import Duration

from caspian.v1 import carbon_pb2
from services.carbon.forecast_error import EmpiricalForecastError, PerfectForecast, load_error_model
from services.carbon.replay import Trace, forecast_grid
from services.carbon.settings import DEFAULT_ERROR_PROFILE
from services.common.timeconv import to_timestamp
from tests.carbon.support import ROOT, TRACES, csv_value

PROFILE = ROOT / DEFAULT_ERROR_PROFILE
SHARED = Path("/work/shared/data/carbon/forecasts")


def quantile(values, q):
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def test_same_seed_same_errors_in_any_order():
    a = EmpiricalForecastError.load(PROFILE, seed=7)
    b = EmpiricalForecastError.load(PROFILE, seed=7)
    lead = timedelta(hours=3)
    forward = [a.relative_error("KR", row, lead) for row in range(500)]
    backward = [b.relative_error("KR", row, lead) for row in reversed(range(500))][::-1]
    assert forward == backward
    other_seed = EmpiricalForecastError.load(PROFILE, seed=8)
    assert [other_seed.relative_error("KR", r, lead) for r in range(500)] != forward
    assert [a.relative_error("JP-TK", r, lead) for r in range(500)] != forward


def test_draws_follow_the_profile_quantiles_and_autocorrelation():
    model = EmpiricalForecastError.load(PROFILE, seed=1)
    profile = json.loads(PROFILE.read_text())
    levels = profile["quantile_levels"]
    for bucket, lead in zip(profile["regions"]["pooled"]["buckets"], (1, 7, 13, 19), strict=True):
        draws = [model.relative_error("KR", row, timedelta(hours=lead)) for row in range(8760)]
        for q in (0.1, 0.5, 0.9):
            expected = bucket["quantiles"][levels.index(q)]
            assert quantile(draws, q) == pytest.approx(expected, abs=0.02 + 0.15 * abs(expected))
    scores = [model.score("KR", row) for row in range(8760)]
    mean = fmean(scores)
    lag1 = fmean((x - mean) * (y - mean) for x, y in zip(scores, scores[1:], strict=False)) / fmean(
        (x - mean) ** 2 for x in scores
    )
    assert lag1 == pytest.approx(profile["regions"]["pooled"]["lag1_autocorrelation"], abs=0.05)


def test_lead_buckets_widen_the_error():
    model = EmpiricalForecastError.load(PROFILE, seed=3)
    spread = []
    for lead in (1, 19):
        draws = [model.relative_error("KR", row, timedelta(hours=lead)) for row in range(4000)]
        spread.append(quantile(draws, 0.9) - quantile(draws, 0.1))
    assert spread[1] > spread[0]
    assert model.bucket(timedelta(hours=40)) is model.buckets[-1]


def test_only_future_rows_carry_error():
    trace = Trace.load(TRACES / "KR_2023_hourly.csv")
    model = load_error_model("dacf-empirical", PROFILE, seed=0)
    issued = datetime(2023, 8, 1, 6, 30, tzinfo=UTC)
    start = datetime(2023, 8, 1, 0, tzinfo=UTC)
    points = forecast_grid(trace, start, timedelta(hours=1), 24, issued_at=issued, error_model=model)
    actual = [csv_value("KR", start + timedelta(hours=i)) for i in range(24)]
    assert [p.value for p in points[:7]] == actual[:7]  # up to and including the current hour
    assert sum(1 for p, a in zip(points[7:], actual[7:], strict=True) if p.value != a) >= 15
    again = forecast_grid(trace, start, timedelta(hours=1), 24, issued_at=issued, error_model=model)
    assert [p.value for p in again] == [p.value for p in points]
    perfect = forecast_grid(
        trace, start, timedelta(hours=1), 24, issued_at=issued, error_model=PerfectForecast()
    )
    assert [p.value for p in perfect] == actual


async def test_grpc_forecast_names_the_error_model(start_carbon):
    run = await start_carbon({"CASPIAN_CARBON_ERROR_MODEL": "dacf-empirical:DE", "CASPIAN_CARBON_SEED": "5"})
    request = carbon_pb2.GetForecastRequest(
        zone="KR",
        start=to_timestamp(datetime(2023, 3, 5, 15, tzinfo=UTC)),
        slot=Duration(seconds=3600),
        slots=12,
    )
    first = await run.stub.GetForecast(request, timeout=5)
    second = await run.stub.GetForecast(request, timeout=5)
    assert first.error_model == "dacf-empirical:DE"
    assert [p.gco2_per_kwh for p in first.points] == [p.gco2_per_kwh for p in second.points]
    actual = [csv_value("KR", datetime(2023, 3, 5, 15 + i, tzinfo=UTC)) for i in range(9)]
    assert [p.gco2_per_kwh for p in first.points[:9]] != actual
    # Each point says how far the model errs at its lead time (the clock is at 14:30: leads 0.5 to 11.5 h).
    model = load_error_model("dacf-empirical:DE", PROFILE, seed=5)
    expected = [model.spread(timedelta(hours=0.5 + i)) for i in range(12)]
    assert list(first.relative_spread) == pytest.approx(expected)
    assert len(set(expected)) == 2 and min(expected) > 0.05  # the 0-6 h and 6-12 h buckets differ


def test_profile_records_its_origin():
    profile = json.loads(PROFILE.read_text())
    assert "carbonfirst/DACF" in profile["origin"]
    assert {s["file"] for s in profile["sources"]} == {
        "CISO_carbon_from_src_prod_forecasts_direct.csv",
        "DE_carbon_from_src_prod_forecasts_direct.csv",
    }
    assert (PROFILE.parent / "LICENSE.DACF.md").is_file()


@pytest.mark.skipif(not SHARED.is_dir(), reason="the DACF source CSVs are not on this machine")
def test_bundled_profile_is_what_the_builder_makes():
    from services.carbon.tools.build_error_profile import build

    assert build(SHARED) == json.loads(PROFILE.read_text())
