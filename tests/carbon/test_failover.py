"""An Electricity Maps zone over real gRPC: live values, provider failure -> stale values -> recovery."""

import logging
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from caspian.v1 import carbon_pb2, common_pb2
from services.common.clock import ManualClock
from services.common.timeconv import from_timestamp, to_timestamp
from tests.carbon.fake_em import hour_floor, value_for
from tests.carbon.support import eventually

# The API zone's clock and the fake API's clock agree on a fixed "now", so nothing depends on the real hour.
NOW = datetime(2024, 3, 6, 19, 20, tzinfo=UTC)


@pytest.fixture
def em_env(fake_em, tmp_path):
    key_file = tmp_path / "em.key"
    key_file.write_text(fake_em.token + "\n")
    fake_em.now = NOW
    return {
        "CASPIAN_CARBON_ZONES": "DE=electricitymaps,KR=replay:data/carbon/electricitymaps/KR_2023_hourly.csv",
        "CASPIAN_CARBON_EM_BASE_URL": fake_em.base_url,
        "CASPIAN_CARBON_EM_API_KEY_FILE": str(key_file),
        "CASPIAN_CARBON_EM_CACHE_SECONDS": "0",
        "CASPIAN_CARBON_EM_RETRIES": "1",
        "CASPIAN_CARBON_EM_BACKOFF_SECONDS": "0.01",
        "CASPIAN_CARBON_EM_TIMEOUT_SECONDS": "2",
    }


async def start_em(start_carbon, env):
    return await start_carbon(env, em_clock=ManualClock(NOW))


async def intensity(run, zone="DE"):
    return await run.stub.GetIntensity(carbon_pb2.GetIntensityRequest(zone=zone), timeout=10)


async def test_live_value_names_its_source(start_carbon, em_env, fake_em):
    run = await start_em(start_carbon, em_env)
    response = await intensity(run)
    assert from_timestamp(response.point.time) == hour_floor(NOW)
    assert response.point.gco2_per_kwh == value_for("DE", hour_floor(NOW))
    assert response.source.age.ToTimedelta() == NOW - hour_floor(NOW)
    assert response.source.provider == "electricitymaps"
    assert response.source.kind == common_pb2.SOURCE_KIND_ESTIMATED  # the fake's latest is isEstimated
    assert not response.source.stale and not response.source.synthetic
    assert fake_em.requests[-1].token == fake_em.token


async def test_failure_serves_last_value_stale_then_recovers(start_carbon, em_env, fake_em, caplog):
    caplog.set_level(logging.DEBUG)
    run = await start_em(start_carbon, em_env)
    good = await intensity(run)
    assert not good.source.stale

    fake_em.mode = "500"
    failing = await intensity(run)
    assert failing.source.stale
    assert failing.point.gco2_per_kwh == good.point.gco2_per_kwh
    assert "provider failed" in failing.source.detail and "HTTP 500" in failing.source.detail
    assert run.metric("carbon_provider_errors_total", provider="electricitymaps", zone="DE") == 1
    assert run.metric("carbon_stale", zone="DE") == 1
    # Other zones are untouched by one provider's failure.
    assert not (await intensity(run, "KR")).source.stale

    fake_em.mode = "ok"
    recovered = await intensity(run)
    assert not recovered.source.stale and "provider failed" not in recovered.source.detail
    assert run.metric("carbon_stale", zone="DE") == 0
    assert any(r.getMessage() == "provider failed" for r in caplog.records)
    assert fake_em.token not in caplog.text


async def test_zone_recovers_by_itself_without_requests(start_carbon, em_env, fake_em):
    fake_em.mode = "503"
    run = await start_em(start_carbon, {**em_env, "CASPIAN_CARBON_REFRESH_SECONDS": "0.05"})
    # No value was ever held: the zone is unavailable, not made up.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await intensity(run)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    fake_em.mode = "ok"
    await eventually(lambda: run.metric("carbon_stale", zone="DE") == 0)
    fake_em.mode = "503"
    await eventually(lambda: run.metric("carbon_stale", zone="DE") == 1)
    errors = run.metric("carbon_provider_errors_total", provider="electricitymaps", zone="DE")
    assert errors >= 2
    fake_em.mode = "ok"
    await eventually(lambda: run.metric("carbon_stale", zone="DE") == 0)
    assert not (await intensity(run)).source.stale
    assert run.metric("carbon_fetch_seconds_count", provider="electricitymaps") > 2


async def test_old_data_is_stale_even_when_the_fetch_succeeds(start_carbon, em_env, fake_em):
    fake_em.latest_age = timedelta(hours=3)
    run = await start_em(start_carbon, em_env)
    response = await intensity(run)
    assert response.source.stale
    assert response.source.age.ToTimedelta() > timedelta(hours=2)
    assert "provider failed" not in response.source.detail


async def test_forecast_from_the_api_on_a_quarter_hour_grid(start_carbon, em_env, fake_em):
    run = await start_em(start_carbon, em_env)
    now_hour = hour_floor(NOW)
    start = now_hour + timedelta(hours=1)
    response = await run.stub.GetForecast(
        carbon_pb2.GetForecastRequest(
            zone="DE", start=to_timestamp(start), slot=Duration(seconds=900), slots=8
        ),
        timeout=10,
    )
    assert response.error_model == "electricitymaps"
    # The API gives no uncertainty: the bundled day-ahead profile stands in for it.
    assert len(response.relative_spread) == 8 and all(0.05 < s < 0.5 for s in response.relative_spread)
    assert response.source.kind == common_pb2.SOURCE_KIND_FORECAST
    values = [p.gco2_per_kwh for p in response.points]
    assert values == [value_for("DE", start)] * 4 + [value_for("DE", start + timedelta(hours=1))] * 4


async def test_forecast_beyond_the_api_horizon_is_filled_and_flagged(start_carbon, em_env, fake_em):
    run = await start_em(start_carbon, em_env)
    start = hour_floor(NOW)
    response = await run.stub.GetForecast(
        carbon_pb2.GetForecastRequest(
            zone="DE", start=to_timestamp(start), slot=Duration(seconds=3600), slots=30
        ),
        timeout=10,
    )
    assert len(response.points) == 30
    # The fake forecasts 24 hours; the rest repeats the value from a day earlier, flagged estimated.
    assert [p.estimated for p in response.points[24:]] == [True] * 6
    assert [p.gco2_per_kwh for p in response.points[24:]] == [p.gco2_per_kwh for p in response.points[:6]]


async def test_forecast_failure_serves_last_forecast_stale(start_carbon, em_env, fake_em):
    run = await start_em(start_carbon, em_env)
    request = carbon_pb2.GetForecastRequest(zone="DE", slot=Duration(seconds=3600), slots=6)
    fake_em.mode = "500"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await run.stub.GetForecast(request, timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    fake_em.mode = "ok"
    fresh = await run.stub.GetForecast(request, timeout=10)
    assert not fresh.source.stale
    fake_em.mode = "malformed"
    stale = await run.stub.GetForecast(request, timeout=10)
    assert stale.source.stale and "BadResponse" in stale.source.detail
    assert [p.gco2_per_kwh for p in stale.points] == [p.gco2_per_kwh for p in fresh.points]


async def test_history_older_than_a_day_needs_past_range(start_carbon, em_env, fake_em):
    start = hour_floor(NOW) - timedelta(days=3)
    request = carbon_pb2.GetHistoryRequest(
        zone="DE", start=to_timestamp(start), end=to_timestamp(start + timedelta(days=2))
    )
    run = await start_em(start_carbon, em_env)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await run.stub.GetHistory(request, timeout=10)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert err.value.details().startswith("start:")

    run = await start_em(start_carbon, {**em_env, "CASPIAN_CARBON_EM_PAST_RANGE": "true"})
    response = await run.stub.GetHistory(request, timeout=10)
    assert len(response.points) == 48
    assert response.points[0].gco2_per_kwh == value_for("DE", start)
    assert fake_em.calls("past-range") == 1


async def test_an_api_zone_needs_a_key():
    from services.carbon import settings as carbon_settings

    with pytest.raises(carbon_settings.SettingsError, match="CASPIAN_CARBON_EM_API_KEY_FILE"):
        carbon_settings.load({"CASPIAN_CARBON_ZONES": "DE=electricitymaps", "ELECTRICITYMAPS_API_KEY": ""})
    assert (
        carbon_settings.load(
            {"CASPIAN_CARBON_ZONES": "DE=electricitymaps", "ELECTRICITYMAPS_API_KEY": "k"}
        ).zones
        == "DE=electricitymaps"
    )
