"""Friendly quantities people write in job files: CPU ("500m"), memory ("1Gi"), durations ("1h30m") and
times ("6h" from now, or RFC 3339), parsed to the integer units of the caspian.v1 contracts."""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from kubernetes.utils.quantity import parse_quantity

from services.common.timeconv import parse_time

_BINARY_SUFFIX = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}

_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")


class QuantityError(ValueError):
    """A value that does not parse; the message says what was expected."""


def _quantity(value: object, what: str, example: str) -> Decimal:
    """A Kubernetes quantity, parsed by the Kubernetes client as the dispatcher and the simulator parse it,
    so that "500m" or "1Gi" means the same in a job file as on a spoke."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise QuantityError(f"expected {what} like {example}, got {value!r}")
    try:
        number = parse_quantity(value.strip() if isinstance(value, str) else value)
    except (ValueError, ArithmeticError):
        raise QuantityError(f"expected {what} like {example}, got {value!r}") from None
    if not number.is_finite():
        raise QuantityError(f"expected {what} like {example}, got {value!r}")
    return number


def parse_cpu_millis(value: object) -> int:
    """CPU in millicores: "500m" -> 500, "2" or 2 -> 2000, 0.25 -> 250. Rounds up, as the kubelet does."""
    millis = _quantity(value, "a CPU amount", "500m or 2") * 1000
    if millis < 0:
        raise QuantityError(f"CPU must not be negative, got {value!r}")
    return int(math.ceil(millis))


def parse_memory_bytes(value: object) -> int:
    """Memory in bytes from a Kubernetes quantity: "1Gi", "512Mi", "1G", "1e9", 1048576."""
    total = _quantity(value, "a memory amount", "512Mi or 1Gi (suffixes Ki, Mi, Gi, Ti or k, M, G, T)")
    if total < 0:
        raise QuantityError(f"memory must not be negative, got {value!r}")
    return int(math.ceil(total))


def parse_duration(value: object) -> timedelta:
    """A duration: "30m", "1h30m", "90s", "1.5h", "2d", "250ms", or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise QuantityError(f"expected a duration like 30m or 1h30m, got {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise QuantityError(f"expected a duration like 30m or 1h30m, got {value!r}")
        return timedelta(seconds=value)
    if not isinstance(value, str):
        raise QuantityError(f"expected a duration like 30m or 1h30m, got {value!r}")
    text = value.strip()
    try:
        return timedelta(seconds=float(text))
    except ValueError:
        pass
    parts = _DURATION_PART.findall(text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise QuantityError(f"expected a duration like 30m, 1h30m or 90s, got {value!r}")
    return timedelta(seconds=sum(float(n) * _DURATION_UNITS[u] for n, u in parts))


def parse_positive_duration(value: object) -> timedelta:
    duration = parse_duration(value)
    if duration <= timedelta(0):
        raise QuantityError(f"must be above zero, got {value!r}")
    return duration


def is_absolute_time(text: str) -> bool:
    """True for RFC 3339 text, false for "now" and offsets such as "6h"."""
    return "T" in text or ":" in text or "-" in text[1:]


def parse_when(value: object, now: datetime) -> datetime:
    """A point in time: RFC 3339 ("2024-05-01T12:00:00Z"), "now", or an offset from now ("6h", "+90m")."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        text = value.strip()
        if text == "now":
            return now
        if is_absolute_time(text):
            try:
                return parse_time(text)
            except ValueError:
                raise QuantityError(
                    f"expected an RFC 3339 time like 2024-05-01T12:00:00Z, got {value!r}"
                ) from None
        try:
            return now + parse_duration(text.removeprefix("+"))
        except QuantityError:
            raise QuantityError(
                f"expected an RFC 3339 time or an offset from now like 6h, got {value!r}"
            ) from None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return now + parse_duration(value)
    raise QuantityError(f"expected an RFC 3339 time or an offset from now like 6h, got {value!r}")


def format_cpu(millis: int) -> str:
    if millis % 1000 == 0:
        return str(millis // 1000)
    return f"{millis}m"


def format_memory(num_bytes: int) -> str:
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        scale = _BINARY_SUFFIX[suffix]
        if num_bytes >= scale and num_bytes % scale == 0:
            return f"{num_bytes // scale}{suffix}"
    for suffix in ("Ti", "Gi", "Mi", "Ki"):
        scale = _BINARY_SUFFIX[suffix]
        if num_bytes >= scale:
            return f"{num_bytes / scale:.1f}{suffix}"
    return str(num_bytes)


def format_duration(seconds: float) -> str:
    """1h30m, 45s, 2d3h: the largest two units."""
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    whole = int(round(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    shown = [f"{n}{u}" for n, u in parts if n]
    return "".join(shown[:2]) or "0s"
