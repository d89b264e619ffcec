"""The store, on both backends (SQLite and a real PostgreSQL server): revisions, idempotent inserts, the
change log, compaction, the carbon cache, collection; and what is SQLite's own (WAL, synchronous mode).

Every test that takes `make_store` or `store` runs once per backend; PostgreSQL-only behaviour (several
writers, lost connections, restarts) is in test_store_postgres.py."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from caspian.v1 import common_pb2
from services.hub.store import (
    MIGRATIONS,
    ChangeKind,
    Fence,
    Fenced,
    IntensityRow,
    Migration,
    NewAppWrapper,
    SqliteStore,
    Update,
    migrate,
)
from services.hub.store.postgres import PostgresStore

NOW = datetime(2023, 6, 1, tzinfo=UTC)
Phase = common_pb2.AppWrapperPhase


def new(app_wrapper_id: str, print_: bytes = b"p1", tenant: str = "t") -> NewAppWrapper:
    message = common_pb2.AppWrapper(id=app_wrapper_id, tenant=tenant)
    message.status.phase = Phase.APP_WRAPPER_PHASE_PENDING
    return NewAppWrapper(message, print_)


@pytest.fixture(params=["sqlite", "postgresql"])
async def make_store(request, tmp_path):
    """Open a store on this test's database (the same one at every call), on each backend in turn."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else ""
    opened = []

    async def make(now=lambda: NOW):
        if url:
            s = PostgresStore(url, now=now)
        else:
            s = SqliteStore(str(tmp_path / "sub" / "hub.db"), now=now)
        await s.open()
        opened.append(s)
        return s

    make.backend = request.param
    yield make
    for s in opened:
        if not getattr(s, "closed_by_test", False):
            await s.close()


async def close(store) -> None:
    await store.close()
    store.closed_by_test = True


@pytest.fixture
async def store(make_store):
    return await make_store()


@pytest.fixture
async def sqlite_store(tmp_path):
    s = SqliteStore(str(tmp_path / "sub" / "hub.db"), now=lambda: NOW)
    await s.open()
    yield s
    await s.close()


async def test_wal_full_sync_and_schema_version(sqlite_store):
    store = sqlite_store
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    versions = [row[0] for row in conn.execute("SELECT version FROM schema_version ORDER BY version")]
    assert versions == [m.version for m in MIGRATIONS]
    conn.close()
    assert store.synchronous == "FULL"
    got = await store._write(lambda tx: tx.conn.execute("PRAGMA synchronous").fetchone()[0])
    assert got == 2  # FULL


def test_migrations_apply_in_order_once_and_refuse_a_newer_database(tmp_path):
    conn = sqlite3.connect(str(tmp_path / "m.db"), isolation_level=None)
    assert migrate(conn, MIGRATIONS[:1]) == 1
    assert migrate(conn) == MIGRATIONS[-1].version
    assert migrate(conn) == MIGRATIONS[-1].version
    extra = Migration(MIGRATIONS[-1].version + 1, "future", "CREATE TABLE future (x INTEGER)")
    migrate(conn, (*MIGRATIONS, extra))
    with pytest.raises(RuntimeError, match="newer than this hub knows"):
        migrate(conn)


async def test_insert_is_idempotent_and_conflicts_on_a_different_spec(store):
    [a] = await store.insert_app_wrappers([new("a")])
    assert a.created and a.record.revision == 1
    [again, other] = await store.insert_app_wrappers([new("a"), new("a", b"p2")])
    assert not again.created and again.record.revision == 1 and again.error is None
    assert other.error is not None and other.error.code == "ALREADY_EXISTS"
    assert store.head_revision == 1


async def test_a_gate_pass_reads_what_it_may_act_on_and_the_next_planned_start(store):
    # One AppWrapper per case; the gate read skips the Pending and the Scheduled ones still to start.
    t0 = NOW.timestamp()
    cases = {
        "pending": (Phase.APP_WRAPPER_PHASE_PENDING, None),
        "due": (Phase.APP_WRAPPER_PHASE_SCHEDULED, t0 - 60),
        "due-now": (Phase.APP_WRAPPER_PHASE_SCHEDULED, t0),
        "later": (Phase.APP_WRAPPER_PHASE_SCHEDULED, t0 + 900.5),
        "latest": (Phase.APP_WRAPPER_PHASE_SCHEDULED, t0 + 1800),
        "no-start": (Phase.APP_WRAPPER_PHASE_SCHEDULED, None),
        "dispatching": (Phase.APP_WRAPPER_PHASE_DISPATCHING, t0 + 600),
        "running": (Phase.APP_WRAPPER_PHASE_RUNNING, t0 + 600),
        "suspended": (Phase.APP_WRAPPER_PHASE_SUSPENDED, None),
        "done": (Phase.APP_WRAPPER_PHASE_SUCCEEDED, t0 - 60),
    }
    await store.insert_app_wrappers([new(name) for name in cases])

    def to(phase, start):
        def mutate(record):
            record.message.status.phase = phase
            if start is not None:
                record.message.status.planned_start.seconds = int(start)
                record.message.status.planned_start.nanos = round((start % 1) * 1e9)
            return True

        return mutate

    await store.update_app_wrappers([Update(name, to(*case)) for name, case in cases.items()])
    gate = [r.id for r in await store.gate_app_wrappers(t0)]
    assert gate == ["due", "due-now", "no-start", "dispatching", "running", "suspended"]
    # The same set as the rule the gates apply to every active record.
    active = await store.active_app_wrappers()
    assert gate == [
        r.id
        for r in active
        if r.phase != Phase.APP_WRAPPER_PHASE_PENDING
        and not (
            r.phase == Phase.APP_WRAPPER_PHASE_SCHEDULED
            and r.message.status.planned_start.ToNanoseconds() > t0 * 1e9
        )
    ]
    assert await store.next_planned_start(t0) == t0 + 900.5
    assert await store.next_planned_start(t0 + 900.5) == t0 + 1800
    assert await store.next_planned_start(t0 + 1800) is None


async def test_revisions_are_global_monotonic_and_survive_reopening(make_store):
    s = await make_store()
    await s.insert_app_wrappers([new("a"), new("b")])
    cluster = await s.save_cluster(common_pb2.ClusterInfo(name="c", zone="KR"))
    assert cluster.name == "c" and s.head_revision == 3

    def to_scheduled(record):
        record.message.status.phase = Phase.APP_WRAPPER_PHASE_SCHEDULED
        return True

    [updated, stale] = await s.update_app_wrappers([Update("a", to_scheduled), Update("b", to_scheduled, 99)])
    assert updated.revision == 4 and stale is None
    await close(s)

    s = await make_store()
    assert s.head_revision == 4
    changes = await s.changes_since(0, 100)
    assert [(c.revision, c.kind, c.app_wrapper.id) for c in changes] == [
        (1, ChangeKind.ADDED, "a"),
        (2, ChangeKind.ADDED, "b"),
        (4, ChangeKind.MODIFIED, "a"),
    ]
    assert changes[-1].previous_phase == Phase.APP_WRAPPER_PHASE_PENDING
    assert [c.name for c in await s.list_clusters()] == ["c"]
    [c] = await s.insert_app_wrappers([new("c")])
    assert c.record.revision == 5
    assert await s.phase_counts() == {
        Phase.APP_WRAPPER_PHASE_PENDING: 2,
        Phase.APP_WRAPPER_PHASE_SCHEDULED: 1,
    }


async def test_a_failing_mutation_undoes_only_its_own_write(store):
    await store.insert_app_wrappers([new("a"), new("b")])

    def boom(record):
        record.message.status.reason = "half done"
        raise ValueError("bad mutation")

    def fine(record):
        record.message.status.reason = "ok"
        return True

    results = await asyncio.gather(
        store.update_app_wrappers([Update("a", boom)]),
        store.update_app_wrappers([Update("b", fine)]),
        return_exceptions=True,
    )
    assert isinstance(results[0], ValueError)
    assert results[1][0].message.status.reason == "ok"
    assert (await store.get_app_wrapper("a")).message.status.reason == ""
    assert [c.app_wrapper.id for c in await store.changes_since(2, 10)] == ["b"]


async def test_concurrent_writes_share_commits(store):
    """Group commit: many concurrent submissions, far fewer transactions."""
    commits = []
    store.add_listener(lambda changes: commits.append(len(changes)))
    outcomes = await asyncio.gather(*(store.insert_app_wrappers([new(f"x{i}")]) for i in range(200)))
    assert all(o[0].created for o in outcomes)
    assert sum(commits) == 200 and len(commits) < 200


async def test_compaction_keeps_the_newest_revisions(store):
    await store.insert_app_wrappers([new(f"x{i}") for i in range(10)])
    assert await store.compact(keep=4) == 6
    assert await store.compacted_through() == 6
    assert [c.revision for c in await store.changes_since(0, 100)] == [7, 8, 9, 10]


async def test_intensity_cache_keeps_values_refreshes_fetch_time_and_drops_old_rows(store):
    slot = 900.0
    first = [IntensityRow("KR", i * slot, slot, 400.0 + i, 10.0) for i in range(4)]
    await store.save_intensities(first, keep_after=0.0)
    # The same horizon fetched later: one value changed, the rest only confirmed.
    second = [
        IntensityRow("KR", i * slot, slot, 400.0 + i + (50.0 if i == 2 else 0.0), 99.0) for i in range(4)
    ]
    second.append(IntensityRow("JP", 0.0, slot, 300.0, 99.0))
    await store.save_intensities(second, keep_after=0.0)
    rows = await store.intensities("KR", 0.0, 4 * slot)
    assert [r.gco2_per_kwh for r in rows] == [400.0, 401.0, 452.0, 403.0]
    assert {r.fetched_at for r in rows} == {99.0}
    assert [r.gco2_per_kwh for r in await store.intensities("JP", 0.0, slot)] == [300.0]
    # Rows that ended before keep_after go; a row still running at keep_after stays.
    await store.save_intensities([], keep_after=2 * slot + 1)
    assert [r.start for r in await store.intensities("KR", 0.0, 4 * slot)] == [2 * slot, 3 * slot]


async def test_finished_appwrappers_are_collected_after_their_ttl_and_keep_their_carbon(make_store):
    now = [NOW]
    s = await make_store(now=lambda: now[0])
    await s.insert_app_wrappers([new("done"), new("waiting"), new("running"), new("unaccounted")])

    def finish(phase, *, accounted=True, needs_accounting=False):
        def mutate(r):
            r.message.status.phase = phase
            r.message.status.carbon.actual_gco2 = 3.0
            r.message.status.carbon.counterfactual_gco2 = 5.0
            r.accounted, r.needs_accounting = accounted, needs_accounting
            return True

        return mutate

    await s.update_app_wrappers(
        [
            Update("done", finish(Phase.APP_WRAPPER_PHASE_SUCCEEDED)),
            Update("running", finish(Phase.APP_WRAPPER_PHASE_RUNNING, accounted=False)),
            Update(
                "unaccounted",
                finish(Phase.APP_WRAPPER_PHASE_FAILED, accounted=False, needs_accounting=True),
            ),
        ]
    )
    before = await s.carbon_totals()
    assert (before.emitted_gco2, before.counterfactual_gco2, before.accounted) == (3.0, 5.0, 1)
    head = s.head_revision
    assert await s.collect_finished(NOW.timestamp()) == 0  # nothing changed before NOW
    now[0] = NOW + timedelta(days=8)
    assert await s.collect_finished(NOW.timestamp() + 1) == 1
    assert await s.get_app_wrapper("done") is None
    for kept in ("waiting", "running", "unaccounted"):
        assert await s.get_app_wrapper(kept) is not None
    after = await s.carbon_totals()
    assert (after.emitted_gco2, after.counterfactual_gco2, after.accounted) == (3.0, 5.0, 1)
    [gone] = await s.changes_since(head, 10)
    assert (gone.kind, gone.app_wrapper.id, gone.previous_phase) == (
        ChangeKind.DELETED,
        "done",
        Phase.APP_WRAPPER_PHASE_SUCCEEDED,
    )
    assert await s.phase_counts() == {
        Phase.APP_WRAPPER_PHASE_PENDING: 1,
        Phase.APP_WRAPPER_PHASE_RUNNING: 1,
        Phase.APP_WRAPPER_PHASE_FAILED: 1,
    }


def test_change_kinds_are_the_contract_watch_event_types():
    from caspian.v1 import hub_pb2

    assert {k.name: int(k) for k in ChangeKind} == {
        name.removeprefix("WATCH_EVENT_TYPE_"): number
        for name, number in hub_pb2.WatchEventType.items()
        if name.removeprefix("WATCH_EVENT_TYPE_") in ChangeKind.__members__
    }
    assert len(ChangeKind) == 3


def test_phase_sets_name_the_phases_they_hold():
    from services.hub import phases

    assert set(phases.ACTIVE) | set(phases.TERMINAL) == set(Phase.values()) - {0}
    assert not set(phases.ACTIVE) & set(phases.TERMINAL)
    assert set(phases.WITHOUT_PLANNED_CARBON) <= set(phases.TERMINAL)


async def test_the_lease_has_one_holder_a_new_epoch_at_each_change_and_old_epochs_are_fenced(store):
    a = await store.acquire_or_renew("loop", "a", 100.0, 15.0)
    assert (a.holder, a.epoch, a.expires) == ("a", 1, 115.0)
    assert await store.acquire_or_renew("loop", "b", 110.0, 15.0) == a  # held: b is told who leads
    renewed = await store.acquire_or_renew("loop", "a", 110.0, 15.0)
    assert (renewed.holder, renewed.epoch, renewed.expires) == ("a", 1, 125.0)
    b = await store.acquire_or_renew("loop", "b", 125.0, 15.0)  # a's lease ran out at 125
    assert (b.holder, b.epoch) == ("b", 2)

    await store.insert_app_wrappers([new("x")])

    def to_scheduled(record):
        record.message.status.phase = Phase.APP_WRAPPER_PHASE_SCHEDULED
        return True

    head = store.head_revision
    for refused in (
        store.update_app_wrappers([Update("x", to_scheduled)], fence=a.fence),
        store.next_cycle(fence=a.fence),
        store.compact(1, fence=a.fence),
        store.collect_finished(1e12, fence=a.fence),
        store.save_intensities([IntensityRow("KR", 0.0, 900.0, 1.0, 1.0)], 0.0, fence=a.fence),
        store.next_cycle(fence=Fence("never-taken", 0)),
    ):
        with pytest.raises(Fenced, match="epoch"):
            await refused
    assert (await store.get_app_wrapper("x")).phase == Phase.APP_WRAPPER_PHASE_PENDING
    assert store.head_revision == head and await store.intensities("KR", 0.0, 900.0) == []
    [moved] = await store.update_app_wrappers([Update("x", to_scheduled)], fence=b.fence)
    assert moved.phase == Phase.APP_WRAPPER_PHASE_SCHEDULED
    assert await store.next_cycle(fence=b.fence) == 1

    assert not await store.release(a)  # not a's to give
    assert await store.release(b)
    again = await store.acquire_or_renew("loop", "a", 126.0, 15.0)
    assert (again.holder, again.epoch) == ("a", 3)


async def test_two_updates_of_one_appwrapper_in_one_call_apply_in_order(store):
    await store.insert_app_wrappers([new("a")])

    def append(text):
        def mutate(record):
            record.message.status.reason += text
            return True

        return mutate

    first, second = await store.update_app_wrappers([Update("a", append("x")), Update("a", append("y"), 2)])
    assert (first.revision, second.revision) == (2, 3)
    assert (await store.get_app_wrapper("a")).message.status.reason == "xy"
    assert [c.app_wrapper.status.reason for c in await store.changes_since(1, 10)] == ["x", "xy"]
