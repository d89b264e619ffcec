"""Leader election: one replica runs the loop, a deposed one is fenced, another takes over after the TTL.

The election itself on a SQLite store with a ManualClock; the hubs over gRPC on the real PostgreSQL server."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
import pytest

from caspian.v1 import common_pb2, hub_pb2
from services.common.clock import ManualClock
from services.hub.leadership import Leadership
from services.hub.store import Fenced, FencedStore, NewAppWrapper, SqliteStore, Update
from tests.support.polling import wait_for

START = datetime(2023, 6, 1, tzinfo=UTC)
Phase = common_pb2.AppWrapperPhase


@pytest.fixture
async def store(tmp_path):
    s = SqliteStore(str(tmp_path / "hub.db"), now=lambda: START)
    await s.open()
    yield s
    await s.close()


class Replica:
    def __init__(self, store, name: str, clock: ManualClock):
        self.events: list[str] = []
        self.leadership = Leadership(
            store,
            name,
            clock=clock,
            ttl=15.0,
            on_elected=self._record("elected"),
            on_deposed=self._record("deposed"),
            on_change=lambda leading: self.events.append(f"gauge={int(leading)}"),
        )
        self.writes: list[str] = []
        self.leadership.write_outcomes = self.writes.append
        self.store = FencedStore(store, self.leadership.fence, self.leadership.on_write)

    def _record(self, what: str):
        async def record() -> None:
            self.events.append(what)

        return record


def to_scheduled(record):
    record.message.status.phase = Phase.APP_WRAPPER_PHASE_SCHEDULED
    return True


async def test_one_leader_at_a_time_and_a_deposed_one_cannot_write(store):
    clock = ManualClock(START)
    a, b = Replica(store, "a", clock), Replica(store, "b", clock)
    await store.insert_app_wrappers([NewAppWrapper(common_pb2.AppWrapper(id="x", tenant="t"), b"p")])

    assert await a.leadership.step() and not await b.leadership.step()
    assert a.events == ["gauge=1", "elected"] and b.events == []
    assert b.leadership.leader == "a"
    with pytest.raises(Fenced):  # a follower's loop writes nothing
        await b.store.update_app_wrappers([Update("x", to_scheduled)])

    clock.advance(10)
    assert await a.leadership.step()  # renewed, same epoch
    clock.advance(16)  # a is paused past its lease: it does not step
    assert await b.leadership.step()
    assert b.leadership.lease.epoch == a.leadership.lease.epoch + 1
    # a still believes it leads (it has not stepped since); its writes carry the old epoch and are refused.
    assert a.leadership.is_leader
    with pytest.raises(Fenced):
        await a.store.update_app_wrappers([Update("x", to_scheduled)])
    with pytest.raises(Fenced):
        await a.store.next_cycle()
    [moved] = await b.store.update_app_wrappers([Update("x", to_scheduled)])
    assert moved.phase == Phase.APP_WRAPPER_PHASE_SCHEDULED
    # Counted by outcome: the deposed leader's writes after its lease ran out were all refused.
    assert a.writes == ["refused", "refused"] and b.writes == ["refused", "accepted"]

    assert not await a.leadership.step()  # resumed: it learns it was deposed and stops its work
    assert a.events == ["gauge=1", "elected", "gauge=0", "deposed"]

    await b.leadership.stop()  # a clean stop hands the lease over at once
    assert b.events[-2:] == ["gauge=0", "deposed"]
    assert await a.leadership.step()


async def test_hubs_on_postgresql_run_one_loop_and_another_takes_over(postgres_url, make_harness):
    lease_clock = ManualClock(START)
    common = dict(
        database_url=postgres_url,
        database_timeout_seconds=2.0,
        lease_clock=lease_clock,
        scheduler_enabled=True,
        debounce_seconds=5.0,
        leader_lease_seconds=15.0,
    )
    first = await make_harness(replica_name="first", **common)
    await first.register_clusters()
    second = await make_harness(replica_name="second", clock=first.clock, **common)

    async def leaders() -> list[float]:
        return [h.metric("caspian_hub_leader") for h in (first, second)]

    await wait_for(lambda: _equals(leaders(), [1.0, 0.0]), what="the first hub to lead")
    assert first.hub.loop.running and not second.hub.loop.running
    await wait_for(lambda: _true(first.hub.loop.idle), what="the leader's first cycle to end")

    # A submission through the follower pokes the leader's loop (its debounce starts).
    submitted = await second.submit(id="via-follower")
    expected = first.clock.now().timestamp() + 5.0
    await wait_for(
        lambda: _true(
            first.hub.loop.idle_until is not None and first.hub.loop.idle_until.timestamp() == expected
        ),
        what="the leader to schedule a debounced cycle",
    )
    assert submitted.status.phase == Phase.APP_WRAPPER_PHASE_PENDING

    # Only the leader runs cycles: the follower says who to ask; both name the leader in GetStats.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await second.cycle()
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "'second'" in refused.value.details() and "the leader is 'first'" in refused.value.details()
    for harness, name in ((first, "first"), (second, "second")):
        stats = await harness.stub.GetStats(hub_pb2.GetStatsRequest(), timeout=10)
        assert (stats.leader, stats.replica) == ("first", name)
    assert (await first.cycle()).cycle > 0
    assert first.metric("caspian_hub_fenced_writes_total", {"outcome": "accepted"}) > 0
    assert first.metric("caspian_hub_fenced_writes_total", {"outcome": "refused"}) == 0

    # The leader stops: the lease is handed over and the other hub starts the loop at its next renewal.
    await first.server.stop(0)
    lease_clock.advance(5.0)
    await wait_for(lambda: _equals(_one(second), 1.0), what="the second hub to take over")
    assert second.hub.loop.running


async def _equals(value, expected) -> bool:
    return (await value) == expected


async def _true(value) -> bool:
    return bool(value)


async def _one(harness) -> float:
    return harness.metric("caspian_hub_leader")


async def test_one_hub_on_sqlite_names_itself_as_the_leader(make_harness):
    harness = await make_harness(replica_name="solo")
    stats = await harness.stub.GetStats(hub_pb2.GetStatsRequest(), timeout=10)
    assert (stats.leader, stats.replica) == ("solo", "solo")
    assert harness.metric("caspian_hub_leader") == 1.0


async def test_a_follower_asks_again_when_the_leaders_lease_runs_out(store):
    clock = ManualClock(START)
    a, b = Replica(store, "a", clock), Replica(store, "b", clock)
    assert await a.leadership.step()
    clock.advance(4)
    assert await a.leadership.step()  # renewed: expires at 19 s
    clock.advance(1)
    assert not await b.leadership.step()
    assert b.leadership.next_step_in() == 5.0  # its renewal period: the lease has 14 s left
    clock.advance(10)
    assert b.leadership.next_step_in() == pytest.approx(4.05)  # just after the lease runs out
    clock.advance(4.05)
    assert await b.leadership.step()
    assert a.leadership.next_step_in() == 5.0 and b.leadership.next_step_in() == 5.0
