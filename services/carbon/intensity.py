"""The carbon domain service: a zone's latest value, forecast grid and history, each with its source.

Honesty rules kept here, whatever the provider:
- every answer names its provider and kind (measured, estimated, forecast, synthetic) and its age;
- data older than `stale_after` is flagged stale;
- when a provider fails, the last values it gave are served flagged stale (UNAVAILABLE only when there are
  none), and the next call or background refresh tries the provider again, so the zone recovers by itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypeVar

from services.carbon.forecast_error import spreads
from services.carbon.metrics import CarbonMetrics
from services.carbon.model import (
    Aggregation,
    Forecast,
    Point,
    Reading,
    Series,
    Source,
    SourceKind,
    Step,
    ZoneInfo,
    fill_gaps,
    make_grid,
    mean_grid,
)
from services.carbon.providers.base import Provider, ProviderError
from services.common.errors import ContractError, InvalidArgument, NotFound, Unavailable

log = logging.getLogger("caspian.carbon")

T = TypeVar("T")
DEFAULT_HISTORY = timedelta(hours=24)
# Resampling more steps and slots than this runs in a worker thread.
OFFLOAD_POINTS = 2000


class IntensityService:
    def __init__(
        self,
        providers: dict[str, Provider],
        metrics: CarbonMetrics,
        *,
        stale_after: timedelta = timedelta(hours=2),
        fetch_timeout: float = 30.0,
        max_slots: int = 2016,
        max_horizon: timedelta = timedelta(hours=8784),
    ):
        self.providers = providers
        self.metrics = metrics
        self.stale_after = stale_after
        self.fetch_timeout = fetch_timeout
        self.max_slots = max_slots
        self.max_horizon = max_horizon
        self._last_reading: dict[str, Reading] = {}
        self._last_series: dict[str, Series] = {}

    # -- zones -------------------------------------------------------------------------------------------

    def zones(self) -> list[ZoneInfo]:
        return [ZoneInfo(z, p.name, p.synthetic, p.detail) for z, p in self.providers.items()]

    def provider_for(self, zone: str, field: str = "zone") -> Provider:
        if not zone:
            raise InvalidArgument("a zone is required", field=field)
        provider = self.providers.get(zone)
        if provider is None:
            raise NotFound(f"unknown zone {zone!r}; known: {', '.join(self.providers)}", field=field)
        return provider

    # -- calls to providers --------------------------------------------------------------------------------

    async def _call(self, provider: Provider, call: Callable[[], Awaitable[T]]) -> tuple[T | None, str]:
        """Run one provider call under the timeout; (result, "") or (None, reason) on failure."""
        started = time.perf_counter()
        try:
            return await asyncio.wait_for(call(), self.fetch_timeout), ""
        except ContractError:
            raise
        except (ProviderError, TimeoutError) as exc:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            log.warning(
                "provider failed", extra={"zone": provider.zone, "provider": provider.name, "error": reason}
            )
        except Exception as exc:  # noqa: BLE001 - a provider bug must not take the zone down; logged in full
            reason = type(exc).__name__
            log.exception("provider raised", extra={"zone": provider.zone, "provider": provider.name})
        finally:
            self.metrics.fetch_seconds.labels(provider.name).observe(time.perf_counter() - started)
        self.metrics.provider_errors.labels(provider.name, provider.zone).inc()
        return None, reason

    def _source(
        self,
        provider: Provider,
        kind: SourceKind,
        now: datetime,
        data_time: datetime,
        detail: str,
        failure: str,
    ) -> Source:
        age = max(timedelta(0), now - data_time)
        if failure:
            detail = f"{detail}; provider failed ({failure}), serving the last values it gave"
        if provider.synthetic:
            kind = SourceKind.SYNTHETIC
        return Source(
            provider.name, kind, provider.synthetic, bool(failure) or age > self.stale_after, age, detail
        )

    # -- the three questions --------------------------------------------------------------------------------

    async def latest(self, zone: str) -> tuple[Point, Source]:
        provider = self.provider_for(zone)
        now = provider.clock.now()
        reading, failure = await self._call(provider, lambda: provider.latest(now))
        if reading is None:
            reading = self._last_reading.get(zone)
            if reading is None:
                raise Unavailable(
                    f"zone {zone}: {provider.name} failed ({failure}) and no earlier value is held"
                )
        else:
            self._last_reading[zone] = reading
        step = reading.step
        kind = SourceKind.ESTIMATED if step.estimated else SourceKind.MEASURED
        source = self._source(provider, kind, now, reading.data_time, reading.detail, failure)
        point = Point(zone, step.start, step.end - step.start, step.value, Aggregation.MEAN, step.estimated)
        self.metrics.intensity.labels(zone).set(step.value)
        self.metrics.data_age.labels(zone).set(source.age.total_seconds())
        self.metrics.stale.labels(zone).set(1 if source.stale else 0)
        return point, source

    async def _series(
        self, provider: Provider, start: datetime, end: datetime, now: datetime
    ) -> tuple[Series, str]:
        series, failure = await self._call(provider, lambda: provider.series(start, end, now))
        if series is not None:
            self._last_series[provider.zone] = series
            return series, ""
        last = self._last_series.get(provider.zone)
        if last is None or not last.steps:
            raise Unavailable(
                f"zone {provider.zone}: {provider.name} failed ({failure}) and no earlier values are held"
            )
        return Series(fill_gaps(last.steps, start, end), last.data_time, last.detail), failure

    async def forecast(self, zone: str, start: datetime | None, slot: timedelta, slots: int) -> Forecast:
        provider = self.provider_for(zone)
        now = provider.clock.now()
        grid = make_grid(start, slot, slots, now, self.max_slots, self.max_horizon)
        series, failure = await self._series(provider, grid.start, grid.end, now)
        if len(series.steps) + grid.slots > OFFLOAD_POINTS:
            points = await asyncio.to_thread(mean_grid, zone, series.steps, grid)
        else:
            points = mean_grid(zone, series.steps, grid)
        kind = _kind(series.steps, forecast=True)
        source = self._source(provider, kind, now, series.data_time, series.detail, failure)
        spread = spreads(provider.forecast_spread, [p.time for p in points], now)
        estimate = provider.forecast_estimate(points, grid.slot, now) or [p.value for p in points]
        return Forecast(zone, points, source, provider.forecast_model, spread, estimate)

    async def history(
        self, zone: str, start: datetime | None, end: datetime | None
    ) -> tuple[list[Point], Source]:
        provider = self.provider_for(zone)
        now = provider.clock.now()
        end = now if end is None or end > now else end
        start = end - DEFAULT_HISTORY if start is None else start
        if start >= end:
            raise InvalidArgument(
                "must be before end, and history ends now; GetForecast looks ahead", field="start"
            )
        if end - start > self.max_horizon:
            raise InvalidArgument(f"the span may be at most {self.max_horizon}", field="start")
        series, failure = await self._series(provider, start, end, now)
        points = [
            Point(zone, s.start, s.end - s.start, s.value, Aggregation.MEAN, s.estimated)
            for s in series.steps
        ]
        source = self._source(
            provider, _kind(series.steps, forecast=False), now, series.data_time, series.detail, failure
        )
        return points, source

    # -- background ----------------------------------------------------------------------------------------

    async def refresh_all(self) -> None:
        """Ask every zone for its latest value: keeps gauges current and lets failed zones recover."""
        for zone in self.providers:
            try:
                await self.latest(zone)
            except Unavailable:
                pass

    async def run_refresher(
        self, interval: float, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    ) -> None:
        while True:
            try:
                await self.refresh_all()
            except Exception:  # noqa: BLE001 - the loop must survive; the failure is logged
                log.exception("refresh failed")
            await sleep(interval)

    async def aclose(self) -> None:
        for provider in self.providers.values():
            try:
                await provider.aclose()
            except Exception:  # noqa: BLE001
                log.exception("closing provider failed", extra={"zone": provider.zone})


def _kind(steps: list[Step], forecast: bool) -> SourceKind:
    if forecast and any(s.forecast for s in steps):
        return SourceKind.FORECAST
    if any(s.estimated for s in steps):
        return SourceKind.ESTIMATED
    return SourceKind.MEASURED
