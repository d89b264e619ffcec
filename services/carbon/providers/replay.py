"""Trace replay: a zone's values come from an Electricity Maps CSV export, following the injected clock."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta

from services.carbon.estimate import estimates, fit_on_trace
from services.carbon.forecast_error import ForecastErrorModel, PerfectForecast
from services.carbon.model import Point, Reading, Series
from services.carbon.providers.base import OFFLOAD_SPAN, Provider
from services.carbon.replay import Trace, apply_error_model
from services.common.clock import Clock


class ReplayProvider(Provider):
    name = "replay"

    def __init__(self, zone: str, trace: Trace, clock: Clock, error_model: ForecastErrorModel | None = None):
        self.zone = zone
        self.trace = trace
        self.clock = clock
        self.error_model = error_model or PerfectForecast()
        self.forecast_model = self.error_model.name
        # Fitted once, on the trace's first weeks through this provider's own error model.
        self.estimate = fit_on_trace(trace, zone, self.error_model)
        self.detail = (
            f"{trace.name} ({trace.emission_factor}, {trace.first:%Y-%m-%d} to {trace.end:%Y-%m-%d}, "
            f"{len(trace.values)} rows)"
        )

    def forecast_spread(self, lead: timedelta) -> float:
        return self.error_model.spread(lead)

    def forecast_estimate(
        self, points: Sequence[Point], slot: timedelta, now: datetime
    ) -> list[float] | None:
        if isinstance(self.error_model, PerfectForecast):
            return None
        return estimates(
            self.estimate, [p.time for p in points], [p.value for p in points], slot, now, self.trace.mean
        )

    async def latest(self, now: datetime) -> Reading:
        step = self.trace.step_at(now)
        trace_time = self.trace.to_trace(step.start)
        detail = (
            f"{self.trace.name} ({self.trace.emission_factor}) at trace time {trace_time:%Y-%m-%dT%H:%MZ}"
        )
        return Reading(step, step.start, detail)

    async def series(self, start: datetime, end: datetime, now: datetime) -> Series:
        if end - start > OFFLOAD_SPAN:
            return await asyncio.to_thread(self.series_now, start, end, now)
        return self.series_now(start, end, now)

    def series_now(self, start: datetime, end: datetime, now: datetime) -> Series:
        steps = apply_error_model(self.trace.steps(start, end), self.zone, now, self.error_model)
        detail = f"{self.trace.name} ({self.trace.emission_factor})"
        return Series(list(steps), self.trace.step_at(now).start, detail)
