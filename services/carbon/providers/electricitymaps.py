"""The Electricity Maps API v3 (carbon-intensity endpoints): an async client and the provider built on it.

The client sends the key in the `auth-token` header and never logs it (`Secret` hides it from repr and str).
Timeouts, transport errors, HTTP 5xx and 429 are retried with exponential backoff and jitter; a 429 waits at
least its Retry-After, and one asking for longer than `max_retry_after` ends the call at once, after which the
provider asks nothing until that time has passed. Other 4xx and malformed answers are not retried.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from services.carbon.forecast_error import ForecastErrorModel
from services.carbon.model import HOUR, Reading, Series, Step, fill_gaps, floor_time
from services.carbon.providers.base import Provider, ProviderError
from services.common.clock import Clock
from services.common.errors import FailedPrecondition
from services.common.timeconv import parse_time

log = logging.getLogger("caspian.carbon.electricitymaps")

PAST_RANGE_LIMIT = timedelta(days=10)


class ElectricityMapsError(ProviderError):
    pass


class UpstreamFailed(ElectricityMapsError):
    """Timeouts, transport errors or HTTP 5xx, after the retries."""


class RateLimited(ElectricityMapsError):
    def __init__(self, message: str, retry_after: float | None):
        super().__init__(message)
        self.retry_after = retry_after


class Rejected(ElectricityMapsError):
    """HTTP 4xx other than 429: a bad key, an unknown zone, an endpoint the plan lacks."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class BadResponse(ElectricityMapsError):
    """The body is not JSON, or not the documented shape."""


class Secret:
    """A string that does not print."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


@dataclass(frozen=True)
class EMPoint:
    time: datetime
    value: float
    estimated: bool = False


@dataclass(frozen=True)
class EMForecast:
    points: list[EMPoint]
    updated_at: datetime | None


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _point(item: Any, where: str) -> EMPoint:
    if not isinstance(item, Mapping):
        raise BadResponse(f"{where}: expected an object")
    value = item.get("carbonIntensity")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadResponse(f"{where}: carbonIntensity is {type(value).__name__}, expected a number")
    try:
        when = parse_time(str(item["datetime"]))
    except (KeyError, ValueError):
        raise BadResponse(f"{where}: missing or bad datetime") from None
    return EMPoint(when, float(value), bool(item.get("isEstimated", False)))


def _points(body: Any, key: str) -> list[EMPoint]:
    if not isinstance(body, Mapping) or not isinstance(body.get(key), list):
        raise BadResponse(f"expected an object with a {key!r} list")
    points: list[EMPoint] = []
    for i, item in enumerate(body[key]):
        if isinstance(item, Mapping) and item.get("carbonIntensity") is None and "datetime" in item:
            continue  # an hour without a value; gaps are filled later
        points.append(_point(item, f"{key}[{i}]"))
    return sorted(points, key=lambda p: p.time)


class ElectricityMapsClient:
    def __init__(
        self,
        base_url: str,
        api_key: Secret,
        *,
        emission_factor: str = "direct",
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        backoff_max: float = 8.0,
        max_retry_after: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ):
        self.emission_factor = "lifecycle" if emission_factor == "lifecycle" else "direct"
        self.retries = retries
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.max_retry_after = max_retry_after
        self._sleep = sleep
        self._jitter = jitter
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            headers={"auth-token": api_key.reveal(), "accept": "application/json"},
            timeout=httpx.Timeout(timeout),
            transport=transport,
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    def backoff_delay(self, attempt: int) -> float:
        """Exponential backoff with 'equal jitter': half fixed, half random."""
        ceiling = min(self.backoff_max, self.backoff * 2**attempt)
        return ceiling / 2 + self._jitter() * ceiling / 2

    async def get(self, path: str, params: Mapping[str, str]) -> Any:
        last: ElectricityMapsError = UpstreamFailed("no attempt made")
        for attempt in range(self.retries + 1):
            delay = self.backoff_delay(attempt)
            try:
                response = await self._http.get(path, params=params)
            except httpx.TimeoutException:
                last = UpstreamFailed(f"{path}: timed out")
            except httpx.TransportError as exc:
                last = UpstreamFailed(f"{path}: {type(exc).__name__}")
            else:
                status = response.status_code
                if status == 429:
                    retry_after = parse_retry_after(response.headers.get("retry-after"))
                    last = RateLimited(f"{path}: rate limited (HTTP 429)", retry_after)
                    if retry_after is not None:
                        if retry_after > self.max_retry_after:
                            raise last
                        delay = retry_after + self._jitter() * min(1.0, self.backoff)
                elif status >= 500:
                    last = UpstreamFailed(f"{path}: HTTP {status}")
                elif status >= 400:
                    raise Rejected(f"{path}: HTTP {status} {_error_text(response)}".rstrip(), status)
                else:
                    try:
                        return response.json()
                    except ValueError:
                        raise BadResponse(f"{path}: the response is not JSON") from None
            if attempt == self.retries:
                break
            log.warning(
                "electricity maps request failed; retrying",
                extra={"path": path, "error": str(last), "attempt": attempt + 1, "delay_s": round(delay, 3)},
            )
            await self._sleep(delay)
        raise last

    def _params(self, zone: str, **extra: str) -> dict[str, str]:
        return {"zone": zone, "emissionFactorType": self.emission_factor, **extra}

    async def latest(self, zone: str) -> EMPoint:
        return _point(await self.get("carbon-intensity/latest", self._params(zone)), "latest")

    async def history(self, zone: str) -> list[EMPoint]:
        """The last 24 hours, hourly."""
        return _points(await self.get("carbon-intensity/history", self._params(zone)), "history")

    async def forecast(self, zone: str) -> EMForecast:
        body = await self.get("carbon-intensity/forecast", self._params(zone))
        points = _points(body, "forecast")
        updated = body.get("updatedAt")
        try:
            updated_at = parse_time(updated) if isinstance(updated, str) else None
        except ValueError:
            raise BadResponse("forecast: bad updatedAt") from None
        return EMForecast(points, updated_at)

    async def past_range(self, zone: str, start: datetime, end: datetime) -> list[EMPoint]:
        """Hourly history over [start, end), in requests of at most 10 days (commercial plans)."""
        points: list[EMPoint] = []
        cur = start
        while cur < end:
            nxt = min(end, cur + PAST_RANGE_LIMIT)
            params = self._params(zone, start=_iso(cur), end=_iso(nxt))
            points += _points(await self.get("carbon-intensity/past-range", params), "data")
            cur = nxt
        return points


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    message = body.get("error") or body.get("message") if isinstance(body, Mapping) else None
    return str(message)[:200] if message else ""


class ElectricityMapsProvider(Provider):
    name = "electricitymaps"
    forecast_model = "electricitymaps"

    def __init__(
        self,
        zone: str,
        client: ElectricityMapsClient,
        clock: Clock,
        *,
        em_zone: str = "",
        cache_seconds: float = 300.0,
        past_range: bool = False,
        monotonic: Callable[[], float] = time.monotonic,
        error_prior: ForecastErrorModel | None = None,
    ):
        self.zone = zone
        self.em_zone = em_zone or zone
        self.client = client
        self.clock = clock
        self.cache_seconds = cache_seconds
        self.past_range = past_range
        self._monotonic = monotonic
        self._cache: dict[str, tuple[float, Any]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._blocked_until = 0.0
        self.detail = f"Electricity Maps API zone {self.em_zone} ({client.emission_factor})"
        # The API gives no uncertainty with its forecasts: the measured day-ahead profile stands in for it.
        self.error_prior = error_prior

    def forecast_spread(self, lead: timedelta) -> float:
        return self.error_prior.spread(lead) if self.error_prior is not None else 0.0

    async def _cached(self, key: str, fetch: Callable[[], Awaitable[Any]]) -> Any:
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            hit = self._cache.get(key)
            if hit is not None and self._monotonic() - hit[0] < self.cache_seconds:
                return hit[1]
            wait = self._blocked_until - self._monotonic()
            if wait > 0:
                raise RateLimited(f"rate limited; next request in {wait:.0f}s", wait)
            try:
                value = await fetch()
            except RateLimited as exc:
                if exc.retry_after:
                    self._blocked_until = self._monotonic() + exc.retry_after
                raise
            self._cache[key] = (self._monotonic(), value)
            return value

    async def latest(self, now: datetime) -> Reading:
        point: EMPoint = await self._cached("latest", lambda: self.client.latest(self.em_zone))
        step = Step(point.time, point.time + HOUR, point.value, point.estimated)
        return Reading(step, point.time, f"{self.detail} at {point.time:%Y-%m-%dT%H:%MZ}")

    async def series(self, start: datetime, end: datetime, now: datetime) -> Series:
        steps: list[Step] = []
        data_times: list[datetime] = []
        if start < now:
            history: list[EMPoint] = await self._cached("history", lambda: self.client.history(self.em_zone))
            earliest = history[0].time if history else floor_time(now, HOUR)
            if start < earliest:
                if not self.past_range:
                    raise FailedPrecondition(
                        f"the Electricity Maps history reaches back to {earliest:%Y-%m-%dT%H:%MZ}; older data "
                        "needs CASPIAN_CARBON_EM_PAST_RANGE=true (a commercial plan)",
                        field="start",
                    )
                history = (
                    await self.client.past_range(self.em_zone, floor_time(start, HOUR), earliest) + history
                )
            steps += [Step(p.time, p.time + HOUR, p.value, p.estimated) for p in history]
            if history:
                data_times.append(history[-1].time)
        if end > now:
            forecast: EMForecast = await self._cached("forecast", lambda: self.client.forecast(self.em_zone))
            covered_until = steps[-1].end if steps else None
            steps += [
                Step(p.time, p.time + HOUR, p.value, p.estimated, forecast=True)
                for p in forecast.points
                if covered_until is None or p.time >= covered_until
            ]
            if forecast.updated_at is not None:
                data_times.append(forecast.updated_at)
            elif forecast.points:
                data_times.append(forecast.points[0].time)
        if not steps:
            raise BadResponse("the API returned no data points")
        # Hours the API did not cover (beyond the forecast horizon, missing values): seasonal persistence.
        filled = fill_gaps(steps, start, end)
        return Series(filled, min(data_times) if data_times else now, self.detail)

    async def aclose(self) -> None:
        await self.client.aclose()
