"""Trace replay over real gRPC: values equal the CSV at known times, under manual, wall-mapped and sim clocks."""

import time
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from caspian.v1 import carbon_pb2, common_pb2
from services.carbon import settings as carbon_settings
from services.carbon.replay import Trace, TraceClockMap
from services.common.clock import ManualClock, SimClock
from services.common.timeconv import from_timestamp, to_timestamp
from tests.carbon.support import LCA, TRACES, csv_estimated, csv_value

KNOWN = [
    ("KR", datetime(2023, 1, 1, 0, 0, tzinfo=UTC)),
    ("KR", datetime(2023, 3, 5, 14, 30, tzinfo=UTC)),
    ("KR", datetime(2023, 7, 19, 3, 59, 59, tzinfo=UTC)),
    ("JP-TK", datetime(2023, 6, 1, 12, 0, tzinfo=UTC)),
    ("JP-TK", datetime(2023, 12, 31, 23, 45, tzinfo=UTC)),
]


def hour_of(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


@pytest.mark.parametrize("zone, when", KNOWN)
async def test_intensity_equals_the_csv_at_known_times(start_carbon, zone, when):
    run = await start_carbon(clock=ManualClock(when))
    response = await run.stub.GetIntensity(carbon_pb2.GetIntensityRequest(zone=zone), timeout=5)
    hour = hour_of(when)
    assert response.point.gco2_per_kwh == csv_value(zone, hour)
    assert from_timestamp(response.point.time) == hour
    assert response.point.duration.seconds == 3600
    assert response.point.aggregation == common_pb2.AGGREGATION_MEAN
    assert response.point.estimated == csv_estimated(zone, hour)
    source = response.source
    assert source.provider == "replay" and not source.synthetic and not source.stale
    expected_kind = (
        common_pb2.SOURCE_KIND_ESTIMATED if csv_estimated(zone, hour) else common_pb2.SOURCE_KIND_MEASURED
    )
    assert source.kind == expected_kind
    assert source.age.ToTimedelta() == when - hour
    assert f"{zone}_2023_hourly.csv" in source.detail


async def test_hourly_forecast_grid_equals_the_csv_rows(start_carbon):
    run = await start_carbon()  # clock at 2023-03-05T14:30Z: the grid spans past and future hours
    start = datetime(2023, 3, 5, 10, tzinfo=UTC)
    request = carbon_pb2.GetForecastRequest(
        zone="KR", start=to_timestamp(start), slot=Duration(seconds=3600), slots=12
    )
    response = await run.stub.GetForecast(request, timeout=5)
    assert [p.gco2_per_kwh for p in response.points] == [
        csv_value("KR", start + timedelta(hours=i)) for i in range(12)
    ]
    assert response.error_model == "perfect"
    assert list(response.relative_spread) == [0.0] * 12
    assert response.source.kind == common_pb2.SOURCE_KIND_FORECAST


async def test_history_returns_the_csv_rows(start_carbon):
    run = await start_carbon()
    start, end = datetime(2023, 3, 4, 14, tzinfo=UTC), datetime(2023, 3, 5, 14, tzinfo=UTC)
    response = await run.stub.GetHistory(
        carbon_pb2.GetHistoryRequest(zone="JP-TK", start=to_timestamp(start), end=to_timestamp(end)),
        timeout=5,
    )
    assert len(response.points) == 24
    for i, point in enumerate(response.points):
        assert from_timestamp(point.time) == start + timedelta(hours=i)
        assert point.gco2_per_kwh == csv_value("JP-TK", start + timedelta(hours=i))
        assert point.estimated  # the JP-TK export flags every hour estimated
    assert response.source.kind == common_pb2.SOURCE_KIND_ESTIMATED


@pytest.mark.parametrize(
    "wall, trace_hour",
    [
        # Same offset from 1 January, moved into the 2023 trace.
        (datetime(2025, 3, 5, 14, 30, tzinfo=UTC), datetime(2023, 3, 5, 14, tzinfo=UTC)),
        # 2024 is a leap year: day 65 of 2024 (5 March) is day 65 of 2023 (6 March).
        (datetime(2024, 3, 5, 14, 30, tzinfo=UTC), datetime(2023, 3, 6, 14, tzinfo=UTC)),
        # 31 December of a leap year lies past the trace's end and wraps to its start.
        (datetime(2024, 12, 31, 5, 0, tzinfo=UTC), datetime(2023, 1, 1, 5, tzinfo=UTC)),
        (datetime(2022, 12, 31, 23, 10, tzinfo=UTC), datetime(2023, 12, 31, 23, tzinfo=UTC)),
    ],
)
async def test_wall_time_maps_to_the_same_offset_in_the_trace_year(start_carbon, wall, trace_hour):
    run = await start_carbon(clock=ManualClock(wall))
    response = await run.stub.GetIntensity(carbon_pb2.GetIntensityRequest(zone="KR"), timeout=5)
    assert response.point.gco2_per_kwh == csv_value("KR", trace_hour)
    assert from_timestamp(response.point.time) == hour_of(wall)  # reported in wall time
    assert trace_hour.strftime("%Y-%m-%dT%H:00Z") in response.source.detail


async def test_replay_follows_the_shared_sim_clock(start_carbon):
    # Sim time 2023-06-01T10:30Z now, running 60x: the hour boundary is 30 real seconds away.
    clock = SimClock(datetime(2023, 6, 1, tzinfo=UTC), speedup=60, anchor=time.time() - 10.5 * 3600 / 60)
    run = await start_carbon(clock=clock)
    response = await run.stub.GetIntensity(carbon_pb2.GetIntensityRequest(zone="KR"), timeout=5)
    assert from_timestamp(response.point.time) == datetime(2023, 6, 1, 10, tzinfo=UTC)
    assert response.point.gco2_per_kwh == csv_value("KR", datetime(2023, 6, 1, 10, tzinfo=UTC))


async def test_any_zone_replays_any_csv_by_path(start_carbon, tmp_path):
    # A full-format export at 30-minute resolution for a zone we never bundled, given by absolute path.
    path = tmp_path / "XX_export.csv"
    header = (
        "Datetime (UTC),Country,Zone Name,Zone Id,Carbon Intensity gCO₂eq/kWh (direct),"
        "Carbon Intensity gCO₂eq/kWh (LCA),Low Carbon Percentage,Renewable Percentage,Data Source,"
        "Data Estimated,Data Estimation Method\n"
    )
    rows = [
        f"2023-05-01 {h:02d}:{m:02d}:00,X,X,XX,{100 + h * 2 + m / 30},{150 + h},0,0,test,false,\n"
        for h in range(24)
        for m in (0, 30)
    ]
    path.write_text(header + "".join(rows), encoding="utf-8")
    zones = f"XX={'replay:' + str(path)},GB=replay:data/carbon/electricitymaps/GB_2023_hourly.csv"
    run = await start_carbon(
        {"CASPIAN_CARBON_ZONES": zones}, clock=ManualClock(datetime(2023, 5, 1, 7, 40, tzinfo=UTC))
    )
    xx = await run.stub.GetIntensity(carbon_pb2.GetIntensityRequest(zone="XX"), timeout=5)
    assert xx.point.gco2_per_kwh == 100 + 7 * 2 + 1
    assert xx.point.duration.seconds == 1800
    gb = await run.stub.GetIntensity(carbon_pb2.GetIntensityRequest(zone="GB"), timeout=5)
    assert gb.point.gco2_per_kwh == csv_value("GB", datetime(2023, 5, 1, 7, tzinfo=UTC))
    zones_listed = await run.stub.ListZones(carbon_pb2.ListZonesRequest(), timeout=5)
    assert [z.zone for z in zones_listed.zones] == ["XX", "GB"]


async def test_lifecycle_factor_serves_the_lca_column(start_carbon):
    run = await start_carbon({"CASPIAN_CARBON_EMISSION_FACTOR": "lifecycle"})
    response = await run.stub.GetIntensity(carbon_pb2.GetIntensityRequest(zone="KR"), timeout=5)
    assert response.point.gco2_per_kwh == csv_value("KR", datetime(2023, 3, 5, 14, tzinfo=UTC), LCA)


async def test_default_zones_resolve_from_any_working_directory(start_carbon, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = await start_carbon()
    zones = await run.stub.ListZones(carbon_pb2.ListZonesRequest(), timeout=5)
    assert [(z.zone, z.provider, z.synthetic) for z in zones.zones] == [
        ("KR", "replay", False),
        ("JP-TK", "replay", False),
        ("CN", "synthetic", True),
    ]


async def test_stale_threshold_flags_old_replay_data(start_carbon):
    run = await start_carbon({"CASPIAN_CARBON_STALE_AFTER_SECONDS": "600"})  # the hour began 30 min ago
    response = await run.stub.GetIntensity(carbon_pb2.GetIntensityRequest(zone="KR"), timeout=5)
    assert response.source.stale
    assert run.metric("carbon_stale", zone="KR") == 1
    assert run.metric("carbon_data_age_seconds", zone="KR") == 1800
    assert run.metric("grid_carbon_intensity_gco2_per_kwh", zone="KR") == response.point.gco2_per_kwh


def test_clock_map_pieces_cover_the_span_with_constant_shifts():
    trace = Trace.load(TRACES / "KR_2023_hourly.csv")
    mapping = trace.clock_map
    assert isinstance(mapping, TraceClockMap)
    start, end = datetime(2022, 12, 30, 22, tzinfo=UTC), datetime(2025, 1, 2, 3, tzinfo=UTC)
    pieces = list(mapping.pieces(start, end))
    assert pieces[0][0] == start and pieces[-1][1] == end
    for (a, b, shift), (c, _, _) in zip(pieces, pieces[1:], strict=False):
        assert b == c
        probe = a + (b - a) / 2
        assert mapping.to_trace(probe) == probe + shift
        assert trace.first <= probe + shift < trace.end


def test_in_process_mean_matches_hand_computation():
    trace = Trace.load("data/carbon/electricitymaps/KR_2023_hourly.csv")
    assert Trace.bundled("KR").values == trace.values
    a = datetime(2023, 3, 5, 10, 20, tzinfo=UTC)
    b = datetime(2023, 3, 5, 12, 5, tzinfo=UTC)
    expected = (
        csv_value("KR", datetime(2023, 3, 5, 10, tzinfo=UTC)) * 40
        + csv_value("KR", datetime(2023, 3, 5, 11, tzinfo=UTC)) * 60
        + csv_value("KR", datetime(2023, 3, 5, 12, tzinfo=UTC)) * 5
    ) / 105
    assert trace.mean(a, b) == pytest.approx(expected, rel=1e-12)


def test_settings_reject_a_missing_trace():
    with pytest.raises(carbon_settings.SettingsError, match="CASPIAN_CARBON_ZONES"):
        carbon_settings.load({"CASPIAN_CARBON_ZONES": "KR=replay:data/nope.csv"})


async def test_unknown_zone_is_not_found(start_carbon):
    run = await start_carbon()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await run.stub.GetIntensity(carbon_pb2.GetIntensityRequest(zone="MARS"), timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
