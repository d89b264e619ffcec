"""Forecast-error models for trace replay: how wrong a forecast of a replayed hour is, by lead time.

- PerfectForecast: the forecast is the trace value.
- EmpiricalForecastError: the relative error of real day-ahead forecasts (DACF, Maji et al., e-Energy 2022),
  bundled as a profile of quantiles per lead-time bucket (`services/carbon/tools/build_error_profile.py`).

The empirical model draws, for every (zone, trace row), a standard normal score from an AR(1) sequence with the
profile's lag-1 autocorrelation, seeded by (seed, zone). A forecast of that row issued `lead` ahead is
`actual * (1 + Q_b(Phi(z)))`, where Q_b is the quantile function of the lead's bucket. The same (zone, row) and
lead bucket always give the same forecast, and a row's error keeps its sign and rank as the lead shrinks.

Each model also says how far its forecasts typically err at a lead time (`spread`: half the 10-90% range of
the relative error; 0 for a perfect forecast). GetForecast returns it per point, and the optimizer can make
uncertain slots look dearer to its decisions (SolveOptions.risk_aversion).
"""

from __future__ import annotations

import json
import math
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from statistics import NormalDist
from typing import Protocol

from services.carbon.zones import resolve_data_path

_NORMAL = NormalDist()


class ForecastErrorModel(Protocol):
    name: str

    def forecast_value(self, zone: str, row: int, actual: float, lead: timedelta) -> float: ...

    def spread(self, lead: timedelta) -> float: ...


class PerfectForecast:
    name = "perfect"

    def forecast_value(self, zone: str, row: int, actual: float, lead: timedelta) -> float:
        return actual

    def spread(self, lead: timedelta) -> float:
        return 0.0


def spreads(
    spread: Callable[[timedelta], float], starts: Sequence[datetime], issued: datetime
) -> list[float]:
    """The typical relative error of each point starting at `starts`, by its lead time (`spread`, e.g. a
    model's); 0 for a point that has begun by `issued`, whose value is known."""
    return [spread(start - issued) if start >= issued else 0.0 for start in starts]


@dataclass(frozen=True)
class LeadBucket:
    from_hours: float
    to_hours: float
    levels: tuple[float, ...]
    quantiles: tuple[float, ...]

    @cached_property
    def spread(self) -> float:
        """Half the 10-90% range of the relative error."""
        return (self.quantile(0.9) - self.quantile(0.1)) / 2

    def quantile(self, u: float) -> float:
        levels, values = self.levels, self.quantiles
        if u <= levels[0]:
            return values[0]
        if u >= levels[-1]:
            return values[-1]
        lo, hi = 0, len(levels) - 1
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if levels[mid] <= u:
                lo = mid
            else:
                hi = mid
        span = levels[hi] - levels[lo]
        return values[lo] + (values[hi] - values[lo]) * (u - levels[lo]) / span


class EmpiricalForecastError:
    def __init__(self, buckets: list[LeadBucket], rho: float, seed: int, name: str = "dacf-empirical"):
        if not buckets:
            raise ValueError("an error profile needs at least one lead-time bucket")
        self.buckets = sorted(buckets, key=lambda b: b.from_hours)
        self.rho = max(-0.999, min(0.999, rho))
        self.seed = seed
        self.name = name
        self._scores: dict[str, list[float]] = {}
        self._rngs: dict[str, random.Random] = {}
        self._lock = threading.Lock()  # forecasts over long spans are computed in worker threads

    @classmethod
    def load(cls, path: str | Path, region: str = "pooled", seed: int = 0) -> EmpiricalForecastError:
        with open(resolve_data_path(path), encoding="utf-8") as fh:
            profile = json.load(fh)
        regions = profile["regions"]
        if region not in regions:
            raise ValueError(f"profile has no region {region!r}; it has {', '.join(sorted(regions))}")
        data = regions[region]
        levels = tuple(float(x) for x in profile["quantile_levels"])
        buckets = [
            LeadBucket(
                float(b["from_hours"]), float(b["to_hours"]), levels, tuple(float(q) for q in b["quantiles"])
            )
            for b in data["buckets"]
        ]
        name = profile.get("name", "dacf-empirical") + ("" if region == "pooled" else f":{region}")
        return cls(buckets, float(data["lag1_autocorrelation"]), seed, name)

    def bucket(self, lead: timedelta) -> LeadBucket:
        hours = lead.total_seconds() / 3600
        for bucket in self.buckets:
            if hours < bucket.to_hours:
                return bucket
        return self.buckets[-1]

    def score(self, zone: str, row: int) -> float:
        """The standard normal score of (zone, row): an AR(1) sequence over rows, seeded by (seed, zone)."""
        scores = self._scores.get(zone)
        if scores is None or row >= len(scores):
            with self._lock:
                scores = self._scores.setdefault(zone, [])
                rng = self._rngs.setdefault(zone, random.Random(f"caspian-forecast-error:{self.seed}:{zone}"))
                keep = math.sqrt(1 - self.rho * self.rho)
                while len(scores) <= row:
                    shock = rng.gauss(0.0, 1.0)
                    scores.append(shock if not scores else self.rho * scores[-1] + keep * shock)
        return scores[row]

    def spread(self, lead: timedelta) -> float:
        return self.bucket(lead).spread

    def relative_error(self, zone: str, row: int, lead: timedelta) -> float:
        return self.bucket(lead).quantile(_NORMAL.cdf(self.score(zone, row)))

    def forecast_value(self, zone: str, row: int, actual: float, lead: timedelta) -> float:
        return max(0.0, actual * (1.0 + self.relative_error(zone, row, lead)))


def load_error_model(name: str, profile_path: str | Path, seed: int) -> ForecastErrorModel:
    """`perfect`, `dacf-empirical` (both regions pooled) or `dacf-empirical:<REGION>`."""
    if name == "perfect":
        return PerfectForecast()
    base, _, region = name.partition(":")
    if base != "dacf-empirical":
        raise ValueError(f"unknown forecast-error model {name!r}")
    return EmpiricalForecastError.load(profile_path, region or "pooled", seed)
