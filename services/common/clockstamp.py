"""The sender's clock on every answer, so a caller can tell when the two disagree.

Every service's server interceptor adds two trailing metadata entries to each unary answer (errors
included):

    caspian-now          the service's clock (services/common/clock.py, simulated or wall) when it answered,
                         as unix seconds with millisecond precision
    caspian-handled-ms   how long the service spent on the call, in real milliseconds

A caller that times the call can then estimate the other clock's lead over its own: the sender's now minus the
caller's now, less the one-way network time (half the round trip not spent handling the call). No contract
field is involved: any client may read the entries, and one that does not is unaffected.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from services.common.clock import Clock

NOW_KEY = "caspian-now"
HANDLED_KEY = "caspian-handled-ms"


@dataclass(frozen=True)
class Stamp:
    now: float  # unix seconds on the sender's clock
    handled_seconds: float  # real seconds the sender spent on the call


def stamp(clock: Clock, handled_seconds: float) -> tuple[tuple[str, str], ...]:
    """The metadata entries of an answer sent now, after `handled_seconds` of work."""
    return (
        (NOW_KEY, f"{clock.now().timestamp():.3f}"),
        (HANDLED_KEY, f"{max(0.0, handled_seconds) * 1000:.3f}"),
    )


def read_stamp(metadata: Iterable[tuple[str, str | bytes]] | None) -> Stamp | None:
    """The stamp of an answer's metadata; None when it has none or it does not parse."""
    values: dict[str, str] = {}
    for key, value in metadata or ():
        if key in (NOW_KEY, HANDLED_KEY):
            values[key] = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
    if NOW_KEY not in values:
        return None
    try:
        now = float(values[NOW_KEY])
        handled = float(values.get(HANDLED_KEY, "0")) / 1000
    except ValueError:
        return None
    if not (math.isfinite(now) and math.isfinite(handled)) or handled < 0:
        return None
    return Stamp(now, handled)
