"""Forecast skill, measured online: how far ahead the hub trusts each zone's forecast.

Greedy lowest-carbon-now plans on one number per zone, the intensity now, and is never fooled by the future.
CASPIAN plans on the forecast, and beats greedy-now only as far as the forecast's predicted changes come true.
When they do not (a poor forecast, a grid unlike the one the forecast was built for), a plan that defers work
to a far "clean" slot can emit more than greedy-now. This module measures, per zone and lead, how much of the
forecast's predicted change really happens, and plans on only that much of it.

Every `issue_every_seconds` (an hour) a cycle records each zone's fresh forecast at hourly points of its grid
(slot start, value, lead) together with the anchor: the latest measured intensity at that time (the carbon
service's history). Once a point's slot has passed, its actual (the history's mean over the slot) scores it:
with d_f = forecast - anchor (the change the forecast predicted) and d_a = actual - anchor (the change that
came), the lead bucket's weight is the least-squares slope through the origin,

    w_b = clip(sum d_f d_a / sum d_f^2, 0, 1)

over the bucket's points of the last `window_seconds`. A slope of 1/2 or more means the forecast's squared
error there is no larger than persistence's (tomorrow = now, what greedy-now plans on): the forecast beats
persistence at that lead and is trusted as served (w = 1). Below 1/2 the hub plans slot i at

    anchor_now + w_b(lead_i) x (f_i - anchor_now),

the blend of the forecast and persistence with the least squared error on the recent past. (Blending every
bucket by its slope, also where the forecast beats persistence, was tried first: it gained much on the default
zones but lost 3.5% of emissions on the solar/wind set-up with the dacf forecast on a tuning seed, so only
forecasts worse than persistence are blended.) A perfect forecast scores w = 1 exactly; a forecast whose
predicted changes do not come true at some lead scores w near 0 there, and the plan sees those slots at the
intensity now, as greedy-now does. w is 1 until a bucket holds `min_samples` scored points (a new hub trusts
its forecast), and is rounded to hundredths.

Only slot values change: jobs, windows and deadlines are untouched, so a blended plan meets every deadline
the raw one would. The state is this process's memory (a new leader starts afresh). Pure but for the one
async `measure_and_blend`, which reads the carbon port; the clock is the caller's `now`.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from services.hub.ports import CarbonPort, IntensitySample

# Lead buckets (hours): [0, 3), [3, 6), [6, 12), [12, 24), [24, 48), [48, inf).
BUCKET_EDGES_HOURS = (3.0, 6.0, 12.0, 24.0, 48.0)
# A slope of at least this means the forecast's squared error is at most persistence's: sum (d_a - d_f)^2 <=
# sum d_a^2 exactly when sum d_f d_a / sum d_f^2 >= 1/2.
BEATS_PERSISTENCE = 0.5


def bucket_of(lead_seconds: float) -> int:
    return bisect.bisect_right(BUCKET_EDGES_HOURS, max(0.0, lead_seconds) / 3600.0)


@dataclass(frozen=True)
class _Point:
    start: float
    end: float
    value: float
    bucket: int


@dataclass
class _Issue:
    issued: float
    anchor: float
    points: list[_Point]


@dataclass
class _Bucket:
    # (slot end, d_f, d_a) of scored points, oldest first.
    samples: deque[tuple[float, float, float]] = field(default_factory=deque)

    def weight(self, min_samples: int) -> float:
        if len(self.samples) < min_samples:
            return 1.0
        fd = sum(f * f for _, f, _ in self.samples)
        if fd <= 0:
            return 1.0
        slope = sum(f * a for _, f, a in self.samples) / fd
        if slope >= BEATS_PERSISTENCE:
            return 1.0  # the forecast beats persistence at this lead: planned on as served
        return round(max(0.0, slope), 2)


def actual_over(samples: Sequence[IntensitySample], start: float, end: float) -> float | None:
    """The duration-weighted mean of `samples` over [start, end), or None unless they cover all of it."""
    covered = total = 0.0
    for s in samples:
        s_start = s.start.timestamp()
        lo, hi = max(start, s_start), min(end, s_start + s.seconds)
        if hi > lo:
            covered += hi - lo
            total += (hi - lo) * s.gco2_per_kwh
    if end <= start or covered < (end - start) * (1 - 1e-9):
        return None
    return total / covered


def latest_actual(samples: Sequence[IntensitySample], now: float) -> float | None:
    """The value of the latest sample that has begun by `now`."""
    begun = [s for s in samples if s.start.timestamp() <= now and math.isfinite(s.gco2_per_kwh)]
    return max(begun, key=lambda s: s.start).gco2_per_kwh if begun else None


class ForecastSkill:
    """Per zone: forecasts issued, waiting for their actuals; scored points by lead bucket; the anchor now."""

    def __init__(
        self,
        window_seconds: float = 7 * 86400.0,
        min_samples: int = 24,
        issue_every_seconds: float = 3600.0,
        point_every_seconds: float = 3600.0,
    ):
        self.window_seconds = window_seconds
        self.min_samples = min_samples
        self.issue_every_seconds = issue_every_seconds
        self.point_every_seconds = point_every_seconds
        self._pending: dict[str, list[_Issue]] = {}
        self._buckets: dict[tuple[str, int], _Bucket] = {}
        self._last_issue: dict[str, float] = {}
        self._anchor: dict[str, float] = {}

    # -- measuring -------------------------------------------------------------------------------------------

    def history_span(self, zone: str, now: float) -> tuple[float, float]:
        """The span of actuals `observe` needs for `zone`: from the oldest pending point (or an hour back)."""
        starts = [p.start for issue in self._pending.get(zone, []) for p in issue.points]
        return min([now - 3600.0, *starts]), now

    def observe(
        self,
        zone: str,
        now: float,
        actuals: Sequence[IntensitySample],
        forecast: Sequence[float] | None = None,
        grid_start: float = 0.0,
        slot_seconds: float = 0.0,
    ) -> None:
        """Score the points whose slots have passed against `actuals`, update the anchor, and, at most every
        `issue_every_seconds`, record `forecast` (the zone's fresh forecast on the grid) for later scoring."""
        anchor = latest_actual(actuals, now)
        if anchor is not None:
            self._anchor[zone] = anchor
        self._score(zone, now, actuals)
        if forecast is None or anchor is None or slot_seconds <= 0:
            return
        last = self._last_issue.get(zone)
        if last is not None and now - last < self.issue_every_seconds:
            return
        self._last_issue[zone] = now
        every = max(1, round(self.point_every_seconds / slot_seconds))
        points = [
            _Point(start, start + slot_seconds, float(value), bucket_of(start - now))
            for i, value in enumerate(forecast)
            if i % every == 0 and (start := grid_start + i * slot_seconds) >= now and math.isfinite(value)
        ]
        if points:
            self._pending.setdefault(zone, []).append(_Issue(now, anchor, points))

    def _score(self, zone: str, now: float, actuals: Sequence[IntensitySample]) -> None:
        kept: list[_Issue] = []
        for issue in self._pending.get(zone, []):
            waiting = []
            for p in issue.points:
                actual = actual_over(actuals, p.start, p.end) if p.end <= now else None
                if actual is not None:
                    bucket = self._buckets.setdefault((zone, p.bucket), _Bucket())
                    bucket.samples.append((p.end, p.value - issue.anchor, actual - issue.anchor))
                elif p.end > now - self.window_seconds:  # not yet measured: wait, unless hopelessly old
                    waiting.append(p)
            if waiting:
                kept.append(_Issue(issue.issued, issue.anchor, waiting))
        self._pending[zone] = kept
        for (z, _), bucket in self._buckets.items():
            if z == zone:
                while bucket.samples and bucket.samples[0][0] < now - self.window_seconds:
                    bucket.samples.popleft()

    # -- using -----------------------------------------------------------------------------------------------

    def weights(self, zone: str) -> list[float]:
        """The trust weight of each lead bucket for `zone` (1: the forecast as it is)."""
        return [
            self._buckets.get((zone, b), _Bucket()).weight(self.min_samples)
            for b in range(len(BUCKET_EDGES_HOURS) + 1)
        ]

    def blend(
        self, zone: str, values: Sequence[float], grid_start: float, slot_seconds: float, now: float
    ) -> list[float]:
        """`values` (the zone's forecast on the grid) with each slot's predicted change from the anchor scaled
        by its lead bucket's weight; unchanged without an anchor or where the weight is 1."""
        out = [float(v) for v in values]
        anchor = self._anchor.get(zone)
        if anchor is None:
            return out
        weights = self.weights(zone)
        if all(w >= 1.0 for w in weights):
            return out
        for i, v in enumerate(out):
            w = weights[bucket_of(grid_start + i * slot_seconds - now)]
            if w < 1.0:
                out[i] = anchor + w * (v - anchor)
        return out


async def measure_and_blend(
    skill: ForecastSkill,
    carbon: CarbonPort,
    series: dict[str, list[float]],
    fresh: set[str],
    grid_start: datetime,
    slot_seconds: float,
    now: datetime,
    record: bool = True,
) -> tuple[dict[str, list[float]], list[str]]:
    """One cycle's use of `skill`: with `record`, read each zone's recent actuals, score what has come due and
    record the `fresh` zones' forecasts; then every zone's series blended by its measured skill. Returns the
    blended series and a note per zone planned on less than its full forecast. A zone whose history cannot be
    read keeps its last weights."""
    now_s, start_s = now.timestamp(), grid_start.timestamp()
    if record:
        for zone in sorted(series):
            lo, hi = skill.history_span(zone, now_s)
            try:
                actuals = await carbon.history(zone, datetime.fromtimestamp(lo, now.tzinfo), now)
            except Exception:  # noqa: BLE001 - skill is an aid: without history the last weights stand
                continue
            if hi > lo:
                skill.observe(
                    zone,
                    now_s,
                    actuals,
                    series[zone] if zone in fresh else None,
                    start_s,
                    slot_seconds,
                )
    blended, notes = {}, []
    for zone, values in series.items():
        blended[zone] = skill.blend(zone, values, start_s, slot_seconds, now_s)
        weights = skill.weights(zone)
        if any(w < 1.0 for w in weights):
            shown = ", ".join(f"{w:.2f}" for w in weights)
            notes.append(f"forecast skill {zone}: predicted changes trusted at {shown} by lead bucket")
    return blended, notes
