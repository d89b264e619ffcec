import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from services.common.clock import ManualClock, SimClock, clock_from_settings, load_clock_settings
from services.common.limits import MAX_RISK_AVERSION
from services.common.settings import SettingsError, load_settings, positive, setting
from services.hub import settings as hub_settings


@dataclass(frozen=True)
class Example:
    count: int = setting(3, positive)
    ratio: float = setting(0.5)
    name: str = setting("x")
    flag: bool = setting(False)
    items: tuple[str, ...] = setting(("a",))


def test_defaults_and_overrides():
    s = load_settings(Example, "EX_", {"EX_COUNT": "7", "EX_FLAG": "yes", "EX_ITEMS": "p, q"})
    assert (s.count, s.ratio, s.name, s.flag, s.items) == (7, 0.5, "x", True, ("p", "q"))


@pytest.mark.parametrize(
    "env, variable",
    [
        ({"EX_COUNT": "abc"}, "EX_COUNT"),
        ({"EX_COUNT": "0"}, "EX_COUNT"),
        ({"EX_RATIO": "nan"}, "EX_RATIO"),
        ({"EX_FLAG": "maybe"}, "EX_FLAG"),
    ],
)
def test_bad_values_name_the_variable(env, variable):
    with pytest.raises(SettingsError) as err:
        load_settings(Example, "EX_", env)
    assert err.value.variable == variable
    assert str(err.value).startswith(variable)


def test_service_port_is_checked():
    with pytest.raises(SettingsError, match="CASPIAN_HUB_PORT"):
        hub_settings.load({"CASPIAN_HUB_PORT": "70000"})


def test_hub_risk_aversion_stays_within_what_the_optimizer_accepts():
    assert hub_settings.load({"CASPIAN_HUB_RISK_AVERSION": str(MAX_RISK_AVERSION)}).risk_aversion == 10.0
    with pytest.raises(SettingsError, match="CASPIAN_HUB_RISK_AVERSION"):
        hub_settings.load({"CASPIAN_HUB_RISK_AVERSION": "10.5"})


def test_sim_clock_runs_faster_and_is_shared_by_anchor():
    start = datetime(2023, 6, 1, tzinfo=UTC)
    anchor = time.time() - 10
    a = SimClock(start, speedup=3600, anchor=anchor)
    b = SimClock(start, speedup=3600, anchor=anchor)
    assert abs((a.now() - b.now()).total_seconds()) < 3600 * 0.05
    assert (a.now() - start).total_seconds() >= 10 * 3600


def test_clock_settings_reject_bad_start():
    with pytest.raises(SettingsError, match="CASPIAN_CLOCK_START"):
        load_clock_settings({"CASPIAN_CLOCK_MODE": "sim", "CASPIAN_CLOCK_START": "yesterday"})
    clock = clock_from_settings(
        load_clock_settings({"CASPIAN_CLOCK_MODE": "sim", "CASPIAN_CLOCK_ANCHOR": str(time.time() - 86400)})
    )
    # A real day ago at 720x: about two simulated years have passed since the start date.
    assert clock.now().year == 2025


async def test_manual_clock_wakes_sleepers_in_order():
    clock = ManualClock(datetime(2023, 1, 1, tzinfo=UTC))
    woke = []

    async def sleeper(name, seconds):
        await clock.sleep(seconds)
        woke.append(name)

    tasks = [asyncio.create_task(sleeper("late", 60)), asyncio.create_task(sleeper("early", 10))]
    await asyncio.sleep(0)
    clock.advance(10)
    await asyncio.sleep(0)
    assert woke == ["early"]
    clock.advance(50)
    await asyncio.gather(*tasks)
    assert woke == ["early", "late"]


async def test_a_manual_sleep_counts_from_its_call_not_from_its_first_step():
    # The spoke simulator's loop makes a task of clock.sleep(due - now); a test may advance the clock before
    # that task first runs. The sleep must still end at `due`, not `advance` seconds later.
    clock = ManualClock(datetime(2023, 1, 1, tzinfo=UTC))
    sleeping = asyncio.ensure_future(clock.sleep(10))
    clock.advance(10)
    await asyncio.wait_for(sleeping, timeout=1.0)
