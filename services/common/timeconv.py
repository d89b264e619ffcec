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
    # timedelta(days, seconds, microseconds), positional: the hub calls this for every job of every cycle.
    return EPOCH + timedelta(0, ts.seconds, ts.nanos // 1000)


def timestamp_seconds(ts: Timestamp) -> float:
    """A Timestamp as seconds since the epoch: the one time representation inside the domain."""
    return ts.seconds + ts.nanos / 1e9


def optional_timestamp_seconds(ts: Timestamp) -> float | None:
    """timestamp_seconds, with the unset (all-zero) Timestamp as None."""
    return timestamp_seconds(ts) if ts.seconds or ts.nanos else None


def timestamp_from_seconds(seconds: float) -> Timestamp:
    """The inverse of timestamp_seconds (nanosecond resolution, never rounding up into the next second)."""
    ts = Timestamp()
    set_timestamp_seconds(ts, seconds)
    return ts


def set_timestamp_seconds(ts: Timestamp, seconds: float) -> None:
    """Set a message's Timestamp field in place to `seconds` (as timestamp_from_seconds, without a copy)."""
    whole = int(seconds // 1)
    ts.seconds = whole
    ts.nanos = min(999_999_999, int((seconds - whole) * 1e9))


# How far apart two instants (in seconds) may be and still count as the same: float arithmetic on epoch
# seconds loses about a microsecond, and no planning decision depends on less.
TIME_TOLERANCE_SECONDS = 1e-6


def no_later_than(a: float, b: float) -> bool:
    """a <= b, up to TIME_TOLERANCE_SECONDS."""
    return a <= b + TIME_TOLERANCE_SECONDS


def to_duration(value: timedelta | float) -> Duration:
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    # protobuf wants seconds and nanos of one sign: -0.5 s is (0, -500000000), never (-1, 500000000).
    sign = -1 if seconds < 0 else 1
    magnitude = abs(seconds)
    d = Duration()
    whole = int(magnitude)
    nanos = int(round((magnitude - whole) * 1e9))
    if nanos >= 1_000_000_000:
        whole += 1
        nanos -= 1_000_000_000
    d.seconds = sign * whole
    d.nanos = sign * nanos
    return d


def duration_seconds(d: Duration) -> float:
    return d.seconds + d.nanos / 1e9


def parse_time(text: str) -> datetime:
    """ISO-8601 to an aware UTC datetime; a naive value is taken as UTC."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


# The ranges protobuf's well-known types allow (0001-01-01 to 9999-12-31; +-10,000 years).
MIN_TIMESTAMP_SECONDS = -62_135_596_800
MAX_TIMESTAMP_SECONDS = 253_402_300_799
MAX_DURATION_SECONDS = 315_576_000_000


def checked_timestamp(ts: Timestamp, field: str) -> datetime:
    """from_timestamp for untrusted input: out-of-range values are the caller's error, naming the field."""
    from services.common.errors import InvalidArgument

    if not (MIN_TIMESTAMP_SECONDS <= ts.seconds <= MAX_TIMESTAMP_SECONDS and 0 <= ts.nanos < 1_000_000_000):
        raise InvalidArgument("timestamp out of range (0001-01-01 to 9999-12-31)", field=field)
    try:
        return from_timestamp(ts)
    except OverflowError:
        raise InvalidArgument("timestamp out of range", field=field) from None


def checked_duration(d: Duration, field: str) -> timedelta:
    """A Duration from untrusted input as a timedelta; out-of-range values name the field."""
    from services.common.errors import InvalidArgument
    from services.common.timefields import duration_problem

    problem = duration_problem(d.seconds, d.nanos)
    if problem is not None:
        sub, message = problem
        raise InvalidArgument(message, field=f"{field}.{sub}" if sub else field)
    try:
        return timedelta(seconds=duration_seconds(d))
    except OverflowError:
        raise InvalidArgument("duration out of range", field=field) from None
