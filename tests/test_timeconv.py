"""The one time representation of the domain: epoch seconds, converted from and to protobuf at the edges."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from services.common.timeconv import (
    TIME_TOLERANCE_SECONDS,
    from_timestamp,
    no_later_than,
    optional_timestamp_seconds,
    timestamp_from_seconds,
    timestamp_seconds,
    to_timestamp,
)


@pytest.mark.parametrize("seconds", [0.0, 1.5, 1_700_000_000.25, 1_700_000_123.000001, 253_402_300_799.0])
def test_timestamp_seconds_round_trips_within_a_microsecond(seconds):
    ts = timestamp_from_seconds(seconds)
    assert 0 <= ts.nanos < 1_000_000_000
    assert abs(timestamp_seconds(ts) - seconds) < 1e-6


def test_timestamp_seconds_agrees_with_the_datetime_conversion():
    when = datetime(2026, 3, 1, 12, 30, 15, 250_000, tzinfo=UTC)
    ts = to_timestamp(when)
    assert timestamp_seconds(ts) == when.timestamp()
    assert from_timestamp(timestamp_from_seconds(when.timestamp())) == when


def test_whole_seconds_convert_exactly_and_nanos_never_reach_a_second():
    assert timestamp_from_seconds(900.0) == Timestamp(seconds=900)
    ts = timestamp_from_seconds(899.9999999999)
    assert ts.seconds == 899 and ts.nanos <= 999_999_999


def test_an_unset_timestamp_is_none():
    assert optional_timestamp_seconds(Timestamp()) is None
    assert optional_timestamp_seconds(Timestamp(seconds=0, nanos=1)) == pytest.approx(1e-9)
    assert optional_timestamp_seconds(Timestamp(seconds=60)) == 60.0


def test_no_later_than_allows_the_tolerance_and_no_more():
    assert no_later_than(10.0, 10.0)
    assert no_later_than(10.0 + TIME_TOLERANCE_SECONDS / 2, 10.0)
    assert not no_later_than(10.0 + 3 * TIME_TOLERANCE_SECONDS, 10.0)
