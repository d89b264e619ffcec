"""Conversions between protobuf Timestamp/Duration and aware datetimes/timedeltas (always UTC)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_timestamp(value: datetime) -> Timestamp:
    ts = Timestamp()
    delta = value.astimezone(UTC) - EPOCH
    micros = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    ts.seconds, rem = divmod(micros, 1_000_000)
    ts.nanos = rem * 1000
    return ts


def from_timestamp(ts: Timestamp) -> datetime:
    return EPOCH + timedelta(seconds=ts.seconds, microseconds=ts.nanos // 1000)


def to_duration(value: timedelta | float) -> Duration:
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    d = Duration()
    whole = int(seconds // 1)
    d.seconds = whole
    d.nanos = int(round((seconds - whole) * 1e9))
    if d.nanos >= 1_000_000_000:
        d.seconds += 1
        d.nanos -= 1_000_000_000
    return d


def duration_seconds(d: Duration) -> float:
    return d.seconds + d.nanos / 1e9


def parse_time(text: str) -> datetime:
    """ISO-8601 to an aware UTC datetime; a naive value is taken as UTC."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
