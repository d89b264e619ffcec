"""The interface every carbon provider implements; the domain service adds caching, staleness and metrics."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime, timedelta

from services.carbon.model import Point, Reading, Series
from services.common.clock import Clock

# Spans longer than this are computed in a worker thread, so a year-long request does not stall the loop.
OFFLOAD_SPAN = timedelta(days=7)


class ProviderError(Exception):
    """A provider could not answer now (network, upstream, rate limit); the service serves stale data."""


class Provider(ABC):
    #: "replay", "synthetic" or "electricitymaps": DataSource.provider
    name: str
    zone: str
    #: every value this provider gives is made up
    synthetic: bool = False
    #: shown in ListZones
    detail: str = ""
    #: the time this provider's data follows (the shared clock; wall time for a live API)
    clock: Clock
    #: how forecasts are made: GetForecastResponse.error_model
    forecast_model: str = ""

    def forecast_spread(self, lead: timedelta) -> float:
        """How far this provider's forecasts typically err at `lead`, as a share of the value (0: exact)."""
        return 0.0

    def forecast_estimate(
        self, points: Sequence[Point], slot: timedelta, now: datetime
    ) -> list[float] | None:
        """One per point: the shrinkage estimate of the forecast (services/carbon/estimate.py); None where
        this provider fits none."""
        return None

    @abstractmethod
    async def latest(self, now: datetime) -> Reading:
        """The step holding at `now`."""

    @abstractmethod
    async def series(self, start: datetime, end: datetime, now: datetime) -> Series:
        """Steps covering [start, end) without gaps; steps from `now` on are flagged forecast."""

    async def aclose(self) -> None:  # noqa: B027 - most providers hold nothing to release
        """Release connections; called once on shutdown."""
