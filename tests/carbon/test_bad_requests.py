"""Bad requests get contract status codes naming the field; unknown zones are NOT_FOUND."""

from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from caspian.v1 import carbon_pb2
from services.common.timeconv import to_timestamp


@pytest.fixture
async def stub(start_carbon):
    run = await start_carbon(
        {"CASPIAN_CARBON_MAX_FORECAST_SLOTS": "100", "CASPIAN_CARBON_MAX_HORIZON_HOURS": "48"}
    )
    return run.stub


async def status_of(call):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value.code(), err.value.details()


def forecast(zone="KR", slot_seconds: float | None = 3600, slots=4):
    request = carbon_pb2.GetForecastRequest(zone=zone, slots=slots)
    if slot_seconds is not None:
        whole = int(slot_seconds // 1)
        request.slot.CopyFrom(Duration(seconds=whole, nanos=int(round((slot_seconds - whole) * 1e9))))
    return request


@pytest.mark.parametrize(
    "request_, field",
    [
        (forecast(slots=0), "slots"),
        (forecast(slots=-3), "slots"),
        (forecast(slots=101), "slots"),
        (forecast(slot_seconds=3600, slots=49), "slots"),  # 49 h > the 48 h horizon
        (forecast(slot_seconds=None), "slot"),
        (forecast(slot_seconds=0), "slot"),
        (forecast(slot_seconds=-60), "slot"),
        (forecast(slot_seconds=0.5), "slot"),
        (forecast(zone=""), "zone"),
    ],
)
async def test_bad_forecast_requests_are_invalid_argument(stub, request_, field):
    code, details = await status_of(stub.GetForecast(request_, timeout=5))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith(f"{field}:"), details


async def test_the_largest_allowed_forecast_is_served(stub):
    response = await stub.GetForecast(forecast(slot_seconds=1800, slots=96), timeout=5)
    assert len(response.points) == 96


@pytest.mark.parametrize("method", ["GetIntensity", "GetForecast", "GetHistory"])
async def test_unknown_zone_is_not_found(stub, method):
    requests = {
        "GetIntensity": carbon_pb2.GetIntensityRequest(zone="ATLANTIS"),
        "GetForecast": forecast(zone="ATLANTIS"),
        "GetHistory": carbon_pb2.GetHistoryRequest(zone="ATLANTIS"),
    }
    code, details = await status_of(getattr(stub, method)(requests[method], timeout=5))
    assert code == grpc.StatusCode.NOT_FOUND
    assert details.startswith("zone:") and "ATLANTIS" in details


@pytest.mark.parametrize(
    "start, end",
    [
        (datetime(2023, 3, 5, 12, tzinfo=UTC), datetime(2023, 3, 5, 11, tzinfo=UTC)),  # backwards
        (datetime(2023, 3, 5, 20, tzinfo=UTC), datetime(2023, 3, 5, 22, tzinfo=UTC)),  # the future
        (datetime(2023, 2, 1, tzinfo=UTC), datetime(2023, 3, 1, tzinfo=UTC)),  # beyond the 48 h limit
    ],
)
async def test_bad_history_spans_name_start(stub, start, end):
    request = carbon_pb2.GetHistoryRequest(zone="KR", start=to_timestamp(start), end=to_timestamp(end))
    code, details = await status_of(stub.GetHistory(request, timeout=5))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("start:"), details


async def test_history_defaults_to_the_last_day_and_stops_now(stub):
    response = await stub.GetHistory(carbon_pb2.GetHistoryRequest(zone="KR"), timeout=5)
    # Now is 14:30: 24 h back starts mid-hour, so 25 pieces, the first and last half an hour.
    assert len(response.points) == 25
    assert response.points[0].duration.ToTimedelta() == timedelta(minutes=30)
    assert response.points[-1].duration.ToTimedelta() == timedelta(minutes=30)
    request = carbon_pb2.GetHistoryRequest(
        zone="KR",
        start=to_timestamp(datetime(2023, 3, 5, 13, tzinfo=UTC)),
        end=to_timestamp(datetime(2023, 3, 6, tzinfo=UTC)),
    )
    clamped = await stub.GetHistory(request, timeout=5)
    assert len(clamped.points) == 2  # 13:00-14:00 and 14:00-14:30, never the future


async def test_times_protobuf_forbids_are_refused_at_the_door(stub):
    """The shared interceptor checks every Timestamp and Duration before the servicer runs."""
    mixed = forecast()
    mixed.slot.CopyFrom(Duration(seconds=3600, nanos=-1))
    code, details = await status_of(stub.GetForecast(mixed, timeout=5))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("slot.nanos:"), details
    history = carbon_pb2.GetHistoryRequest(zone="KR")
    history.start.seconds = 10**12
    code, details = await status_of(stub.GetHistory(history, timeout=5))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("start:"), details
