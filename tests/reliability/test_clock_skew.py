"""A dispatcher whose simulated clock runs ahead of the hub's (as after a restart that reset one clock, F14):
the hub measures the skew on every call, shows it in caspian_hub_peer_clock_skew_seconds{peer} and in each
cycle's notes, and says nothing about carbon and optimizer, whose clocks agree with it. Jobs whose deadlines
leave room for the skew still run: none lost, none with two Jobs."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from services.common.timeconv import parse_time
from services.launcher.stack import StackConfig
from tests.reliability.stacks import (
    hub_now,
    hub_stub,
    phases_of,
    spoke_urls,
    start_stack,
    submit_bulk,
    trigger,
)
from tests.reliability.support import (
    AW_LABEL,
    Phase,
    app_wrapper,
    list_all_blocking,
    scale,
    scrape,
    spoke_jobs,
    wait_until,
)

SPEEDUP = 720.0
AHEAD_S = 2 * 3600.0  # twice the default limit at 720x (5 real seconds: 3600 simulated)
# Half a real second of one-way timing error at 720x.
TOLERANCE_S = 360.0
SKEW = "caspian_hub_peer_clock_skew_seconds"
TENANT = "skew"
# The hub has seen the Job on its spoke.
DISPATCHED = {Phase.APP_WRAPPER_PHASE_RUNNING, Phase.APP_WRAPPER_PHASE_SUCCEEDED}


def skews(metrics_address: str) -> dict[str, float]:
    return {
        dict(labels)["peer"]: value
        for (name, labels), value in scrape(metrics_address).items()
        if name == SKEW
    }


@pytest.fixture
def stack(tmp_path):
    ahead = parse_time(StackConfig.clock_start) + timedelta(seconds=AHEAD_S)
    running = start_stack(
        tmp_path,
        speedup=SPEEDUP,
        dispatcher={"CASPIAN_CLOCK_START": ahead.isoformat().replace("+00:00", "Z")},
    )
    yield running
    running.stop()


@pytest.mark.scenario("dispatcher clock ahead of the hub")
def test_a_dispatcher_clock_ahead_of_the_hub_is_measured_and_noted(stack, scenario):
    total = scale(6, 60)
    hub_metrics = stack.services["hub"].metrics_address
    with stack.hub_channel() as channel:
        stub = hub_stub(channel)
        now = hub_now(stub)
        messages = [
            app_wrapper(
                id=f"skew-{i:03d}", now=now, tenant=TENANT, runtime_s=600, cpu_millis=100, slack_s=12 * 3600
            )
            for i in range(total)
        ]
        submit_bulk(stub, messages)
        summary = trigger(stub)
        measured = wait_until(
            lambda: (s := skews(hub_metrics)) and {"carbon", "optimizer", "dispatcher"} <= s.keys() and s,
            60,
            "a skew for each of carbon, optimizer and dispatcher",
            interval=0.2,
        )
        notes = [n for n in summary.notes if n.startswith("clock skew:")]
        scenario.detail.update(
            {
                "dispatcher_ahead_s": AHEAD_S,
                "speedup": SPEEDUP,
                "measured_skew_s": {peer: round(value, 1) for peer, value in sorted(measured.items())},
                "tolerance_s": TOLERANCE_S,
                "cycle_notes": notes,
                "app_wrappers": total,
            }
        )
        assert measured["dispatcher"] == pytest.approx(AHEAD_S, abs=TOLERANCE_S)
        assert measured["carbon"] == pytest.approx(0.0, abs=TOLERANCE_S)
        assert measured["optimizer"] == pytest.approx(0.0, abs=TOLERANCE_S)
        assert (
            len(notes) == 1
            and notes[0].startswith("clock skew: dispatcher is ")
            and notes[0].endswith(" s ahead of the hub")
        ), list(summary.notes)

        ids = [m.id for m in messages]

        def all_dispatched() -> bool:
            if set(phases_of(stub, ids).values()) <= DISPATCHED:
                return True
            trigger(stub)  # the next cycle opens the next gates
            return False

        wait_until(all_dispatched, 120, "every AppWrapper dispatched", interval=0.5)
        listed = {aw.id for aw in list_all_blocking(channel, tenant=TENANT)}
    jobs = Counter(
        job.metadata.labels.get(AW_LABEL)
        for spoke in spoke_jobs(spoke_urls(stack)).values()
        for job in spoke
        if job.metadata.labels.get(AW_LABEL, "").startswith("skew-")
    )
    scenario.lost = len(set(ids) - listed) + sum(1 for i in ids if jobs[i] == 0)
    scenario.duplicated = sum(1 for count in jobs.values() if count > 1)
    assert scenario.lost == 0 and scenario.duplicated == 0, (scenario.lost, scenario.duplicated)
