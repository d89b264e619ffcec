"""The Electricity Maps client against a local fake of the API: happy path, 429, 5xx, timeout, bad bodies."""

import logging
from datetime import UTC, datetime, timedelta

import pytest

from services.carbon.providers.electricitymaps import (
    BadResponse,
    ElectricityMapsClient,
    ElectricityMapsProvider,
    RateLimited,
    Rejected,
    Secret,
    UpstreamFailed,
    parse_retry_after,
)
from services.common.clock import ManualClock
from tests.carbon.fake_em import hour_floor, value_for

NOW = datetime(2024, 3, 6, 19, 20, tzinfo=UTC)


class Sleeps:
    """Records backoff delays instead of sleeping, so retry tests take no time."""

    def __init__(self):
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def sleeps():
    return Sleeps()


@pytest.fixture
async def client(fake_em, sleeps):
    fake_em.now = NOW
    c = ElectricityMapsClient(
        fake_em.base_url,
        Secret(fake_em.token),
        timeout=2.0,
        retries=2,
        backoff=0.5,
        backoff_max=4.0,
        max_retry_after=10.0,
        sleep=sleeps,
        jitter=lambda: 0.5,
    )
    yield c
    await c.aclose()


async def test_happy_path_latest_history_forecast(client, fake_em):
    latest = await client.latest("DE")
    assert (
        latest.time == hour_floor(NOW)
        and latest.value == value_for("DE", hour_floor(NOW))
        and latest.estimated
    )
    history = await client.history("DE")
    assert len(history) == 24 and history[-1].time == hour_floor(NOW)
    assert [p.time for p in history] == sorted(p.time for p in history)
    forecast = await client.forecast("DE")
    assert len(forecast.points) == 24 and forecast.updated_at == NOW
    assert forecast.points[3].value == value_for("DE", hour_floor(NOW) + timedelta(hours=3))
    for recorded in fake_em.requests:
        assert recorded.token == fake_em.token
        assert recorded.query["zone"] == ["DE"] and recorded.query["emissionFactorType"] == ["direct"]
    assert [r.path for r in fake_em.requests] == [
        "/v3/carbon-intensity/latest",
        "/v3/carbon-intensity/history",
        "/v3/carbon-intensity/forecast",
    ]


async def test_past_range_is_split_into_ten_day_requests(client, fake_em):
    start = datetime(2024, 1, 1, tzinfo=UTC)
    points = await client.past_range("DE", start, start + timedelta(days=25))
    assert len(points) == 25 * 24
    assert fake_em.calls("past-range") == 3
    assert fake_em.requests[0].query["start"] == ["2024-01-01T00:00:00Z"]
    assert fake_em.requests[0].query["end"] == ["2024-01-11T00:00:00Z"]


async def test_429_waits_for_retry_after_then_succeeds(client, fake_em, sleeps):
    fake_em.retry_after = "3"
    fake_em.queue = ["429", "429"]
    latest = await client.latest("DE")
    assert latest.value == value_for("DE", hour_floor(NOW))
    assert fake_em.calls("latest") == 3
    assert len(sleeps.delays) == 2 and all(d >= 3 for d in sleeps.delays)


async def test_429_with_a_long_retry_after_fails_at_once(client, fake_em, sleeps):
    fake_em.retry_after = "120"
    fake_em.queue = ["429"]
    with pytest.raises(RateLimited) as err:
        await client.latest("DE")
    assert err.value.retry_after == 120
    assert fake_em.calls("latest") == 1 and sleeps.delays == []


async def test_429_without_retry_after_backs_off_exponentially(client, fake_em, sleeps):
    fake_em.retry_after = ""
    fake_em.queue = ["429", "429", "429"]
    with pytest.raises(RateLimited):
        await client.latest("DE")
    assert fake_em.calls("latest") == 3
    assert sleeps.delays == [0.375, 0.75]  # equal jitter at 0.5: 3/4 of 0.5, then of 1.0


async def test_5xx_is_retried_with_backoff(client, fake_em, sleeps):
    fake_em.queue = ["500", "503"]
    assert (await client.latest("DE")).value == value_for("DE", hour_floor(NOW))
    assert fake_em.calls("latest") == 3
    assert sleeps.delays == [0.375, 0.75]


async def test_5xx_every_time_gives_up_after_the_retries(client, fake_em, sleeps):
    fake_em.mode = "500"
    with pytest.raises(UpstreamFailed, match="HTTP 500"):
        await client.latest("DE")
    assert fake_em.calls("latest") == 3  # one try and two retries


async def test_timeout_is_retried_then_reported(fake_em, sleeps):
    fake_em.mode = "slow"
    fake_em.slow_seconds = 1.5
    c = ElectricityMapsClient(fake_em.base_url, Secret(fake_em.token), timeout=0.2, retries=1, sleep=sleeps)
    try:
        with pytest.raises(UpstreamFailed, match="timed out"):
            await c.latest("DE")
    finally:
        await c.aclose()
    assert fake_em.calls("latest") == 2 and len(sleeps.delays) == 1


# The timeout for a test whose retry must get a normal answer: room for a local round trip on a loaded
# machine (0.2 s was not always), while the slow answer takes far longer still.
RECOVERY_TIMEOUT_S = 1.0
SLOWER_THAN_TIMEOUT_S = 5.0


async def test_timeout_then_recovery(fake_em, sleeps):
    fake_em.queue = ["slow"]
    fake_em.slow_seconds = SLOWER_THAN_TIMEOUT_S
    c = ElectricityMapsClient(
        fake_em.base_url, Secret(fake_em.token), timeout=RECOVERY_TIMEOUT_S, retries=1, sleep=sleeps
    )
    try:
        assert (await c.latest("DE")).value > 0
    finally:
        await c.aclose()
    assert fake_em.calls("latest") == 2 and len(sleeps.delays) == 1


@pytest.mark.parametrize("behaviour", ["malformed", "badshape"])
async def test_malformed_answers_are_bad_responses_not_retried(client, fake_em, behaviour):
    fake_em.queue = [behaviour]
    with pytest.raises(BadResponse):
        await client.latest("DE")
    assert fake_em.calls("latest") == 1


async def test_bad_token_is_rejected_without_retry(fake_em, sleeps):
    c = ElectricityMapsClient(fake_em.base_url, Secret("wrong-token"), retries=3, sleep=sleeps)
    try:
        with pytest.raises(Rejected) as err:
            await c.latest("DE")
    finally:
        await c.aclose()
    assert err.value.status == 401 and "Token is invalid" in str(err.value)
    assert fake_em.calls("latest") == 1


async def test_the_key_never_reaches_the_logs(fake_em, caplog, sleeps):
    secret = "sk-very-secret-4242"
    fake_em.token = secret
    fake_em.queue = ["500", "429", "slow", "malformed"]
    fake_em.retry_after = "0"
    fake_em.slow_seconds = SLOWER_THAN_TIMEOUT_S
    caplog.set_level(logging.DEBUG)
    c = ElectricityMapsClient(
        fake_em.base_url, Secret(secret), timeout=RECOVERY_TIMEOUT_S, retries=3, sleep=sleeps
    )
    try:
        with pytest.raises(BadResponse) as err:
            await c.latest("DE")
        await c.latest("DE")
    finally:
        await c.aclose()
    assert caplog.records, "the retries should have logged"
    assert secret not in caplog.text
    assert (
        secret not in repr(err.value)
        and secret not in str(Secret(secret))
        and secret not in repr(Secret(secret))
    )


async def test_provider_caches_answers_and_honours_a_rate_limit(fake_em):
    fake_em.now = NOW
    ticks = [0.0]
    c = ElectricityMapsClient(fake_em.base_url, Secret(fake_em.token), retries=0, max_retry_after=5)
    provider = ElectricityMapsProvider(
        "DE", c, ManualClock(NOW), cache_seconds=60, monotonic=lambda: ticks[0]
    )
    try:
        first = await provider.latest(NOW)
        await provider.latest(NOW)
        assert fake_em.calls("latest") == 1  # cached
        assert first.step.value == value_for("DE", hour_floor(NOW))
        ticks[0] = 61
        fake_em.retry_after = "100"
        fake_em.queue = ["429"]
        with pytest.raises(RateLimited):
            await provider.latest(NOW)
        ticks[0] = 120  # still inside the 100 s the API asked for: no request is made
        with pytest.raises(RateLimited):
            await provider.latest(NOW)
        assert fake_em.calls("latest") == 2
        ticks[0] = 162
        await provider.latest(NOW)
        assert fake_em.calls("latest") == 3
    finally:
        await c.aclose()


def test_retry_after_parses_seconds_and_http_dates():
    assert parse_retry_after("7") == 7
    assert parse_retry_after("-3") == 0
    assert (
        parse_retry_after(
            "Wed, 21 Oct 2015 07:28:30 GMT", now=datetime(2015, 10, 21, 7, 28, tzinfo=UTC).timestamp()
        )
        == 30
    )
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_backoff_grows_exponentially_within_jitter_bounds():
    c = ElectricityMapsClient(
        "http://127.0.0.1:9/v3", Secret("k"), backoff=0.5, backoff_max=4.0, jitter=lambda: 1.0
    )
    assert [c.backoff_delay(i) for i in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    c._jitter = lambda: 0.0
    assert [c.backoff_delay(i) for i in range(3)] == [0.25, 0.5, 1.0]
