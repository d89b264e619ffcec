"""What only the PostgreSQL store has: several stores (replicas) on one database, a lost connection, a
server restart. On the session's real PostgreSQL server (tests/support/postgres.py)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import psycopg
import pytest

from caspian.v1 import common_pb2
from services.hub.store import MIGRATIONS, Fenced, Migration, NewAppWrapper, StoreUnavailable, Update
from services.hub.store.postgres import PostgresStore
from services.hub.store.postgres.engine import PgTx
from services.hub.store.postgres.follower import ChangeFollower
from services.hub.store.postgres.schema import migrate_postgres
from services.hub.store.records import Change, ChangeKind

NOW = datetime(2023, 6, 1, tzinfo=UTC)
Phase = common_pb2.AppWrapperPhase


def new(app_wrapper_id: str, print_: bytes = b"p1") -> NewAppWrapper:
    message = common_pb2.AppWrapper(id=app_wrapper_id, tenant="t")
    message.status.phase = Phase.APP_WRAPPER_PHASE_PENDING
    return NewAppWrapper(message, print_)


async def poll(predicate, within: float = 10.0, what: str = ""):
    deadline = time.monotonic() + within
    while True:
        result = await predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await asyncio.sleep(0.02)


@pytest.fixture
async def replicas(postgres_url):
    """Open PostgresStores on one database, as hub replicas would."""
    opened: list[PostgresStore] = []

    async def make(**kwargs) -> PostgresStore:
        store = PostgresStore(postgres_url, now=lambda: NOW, poll_seconds=0.2, **kwargs)
        await store.open()
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


async def test_migrations_apply_once_per_database_and_refuse_a_newer_one(postgres_url):
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
        assert await migrate_postgres(conn, MIGRATIONS[:1]) == 1
        assert await migrate_postgres(conn) == MIGRATIONS[-1].version
        assert await migrate_postgres(conn) == MIGRATIONS[-1].version
        extra = Migration(MIGRATIONS[-1].version + 1, "future", "", "CREATE TABLE future (x INTEGER)")
        await migrate_postgres(conn, (*MIGRATIONS, extra))
        with pytest.raises(RuntimeError, match="newer than this hub knows"):
            await migrate_postgres(conn)


async def test_replicas_starting_together_migrate_once(replicas, postgres_url):
    await asyncio.gather(*(replicas() for _ in range(3)))
    async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
        cur = await conn.execute("SELECT version FROM schema_version ORDER BY version")
        assert [v for (v,) in await cur.fetchall()] == [m.version for m in MIGRATIONS]


async def test_two_replicas_submitting_the_same_ids_at_once_make_one_object_each(replicas):
    a, b = await replicas(), await replicas()
    ids = [f"same-{i}" for i in range(50)]
    outcomes = await asyncio.gather(
        *(store.insert_app_wrappers([new(i)]) for i in ids for store in (a, b)),
    )
    by_id: dict[str, list] = {}
    for [outcome] in outcomes:
        assert outcome.error is None
        by_id.setdefault(outcome.record.id, []).append(outcome)
    for app_wrapper_id, pair in by_id.items():
        assert sorted(o.created for o in pair) == [False, True], app_wrapper_id
        assert len({o.record.revision for o in pair}) == 1
    assert sum((await a.phase_counts()).values()) == 50
    log = await a.changes_since(0, 1000)
    assert sorted(c.app_wrapper.id for c in log) == sorted(ids)
    # A different spec under a taken id is refused on either replica.
    [conflict] = await b.insert_app_wrappers([new("same-0", b"other")])
    assert conflict.error is not None and conflict.error.code == "ALREADY_EXISTS"


async def test_a_watcher_on_one_replica_sees_every_replicas_changes_in_order_without_gaps(replicas):
    a, b = await replicas(), await replicas()
    seen_by_b: list[int] = []
    b.add_listener(lambda changes: seen_by_b.extend(c.revision for c in changes))

    def to_scheduled(record):
        record.message.status.phase = Phase.APP_WRAPPER_PHASE_SCHEDULED
        return True

    async def writer(store, prefix):
        for i in range(20):
            await store.insert_app_wrappers([new(f"{prefix}{i}"), new(f"{prefix}{i}x")])
            await store.update_app_wrappers([Update(f"{prefix}{i}", to_scheduled)])

    await asyncio.gather(writer(a, "a"), writer(b, "b"), writer(a, "c"))
    logged = [c.revision for c in await a.changes_since(0, 10_000)]
    assert len(logged) == 3 * 20 * 3
    await poll(lambda: asyncio.sleep(0, len(seen_by_b) >= len(logged)), what="B to see every change")
    assert seen_by_b == logged  # each once, in revision order, including A's
    assert logged == list(range(1, len(logged) + 1))  # nothing rolled back: no hole either
    # Resume from a revision works on either replica.
    assert [c.revision for c in await b.changes_since(logged[40], 10)] == logged[41:51]


async def test_a_later_revision_is_not_seen_before_an_earlier_one_commits(replicas, postgres_url):
    """Revisions are allocated under a row lock held to COMMIT: a writer that allocates after an open
    transaction waits for it, so readers never see N+1 while N may still commit."""
    a, b = await replicas(), await replicas()
    seen_by_b: list[int] = []
    b.add_listener(lambda changes: seen_by_b.extend(c.revision for c in changes))
    await a.insert_app_wrappers([new("first")])
    await poll(lambda: asyncio.sleep(0, seen_by_b == [1]), what="the first change")

    slow = await psycopg.AsyncConnection.connect(postgres_url)
    try:
        tx = PgTx(slow, NOW)
        revision = await tx.next_revision()  # revision 2, its transaction left open
        await slow.execute(
            "INSERT INTO changes(revision, id, kind, phase, tenant, previous_phase, body) "
            "VALUES (%s, 'slow', 1, 1, 't', 0, %s)",
            (revision, common_pb2.AppWrapper(id="slow", revision=revision).SerializeToString()),
        )
        later = asyncio.create_task(a.insert_app_wrappers([new("later")]))

        async def a_writer_waits_on_the_lock():
            cur = await slow.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            return (await cur.fetchone())[0] >= 1

        await poll(a_writer_waits_on_the_lock, what="the later writer to wait for the revision lock")
        assert not later.done()
        assert [c.revision for c in await b.changes_since(1, 10)] == []
        await slow.execute("UPDATE meta SET value = %s WHERE key = 'revision'", (str(revision),))
        await slow.commit()
        [outcome] = await later
        assert outcome.record.revision == 3
        await poll(lambda: asyncio.sleep(0, len(seen_by_b) == 3), what="both changes on B")
        assert seen_by_b == [1, 2, 3]
    finally:
        await slow.close()


async def test_a_connection_lost_mid_transaction_commits_nothing_and_the_store_goes_on(
    replicas, postgres_url
):
    store = await replicas()
    await store.insert_app_wrappers([new("a")])
    head = store.head_revision
    blocker = await psycopg.AsyncConnection.connect(postgres_url)
    try:
        # Hold the row, so the store's update stops inside its transaction, waiting for the lock.
        await blocker.execute("SELECT 1 FROM appwrappers WHERE id = 'a' FOR UPDATE")

        def cancel(record):
            record.message.status.phase = Phase.APP_WRAPPER_PHASE_CANCELLED
            return True

        update = asyncio.create_task(store.update_app_wrappers([Update("a", cancel)]))

        async def waiting_backend():
            cur = await blocker.execute(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            row = await cur.fetchone()
            return row[0] if row else None

        pid = await poll(waiting_backend, what="the store's transaction to wait on the row")
        await blocker.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(StoreUnavailable, match="hub database unavailable"):
            await update
    finally:
        await blocker.close()
    record = await store.get_app_wrapper("a")
    assert record.phase == Phase.APP_WRAPPER_PHASE_PENDING and record.revision == head
    assert [c.revision for c in await store.changes_since(head, 10)] == []
    [b] = await store.insert_app_wrappers([new("b")])
    assert b.record.revision == head + 1  # the lost transaction's revision was given back


async def test_a_server_restart_is_unavailable_while_down_and_recovered_from_without_help(
    replicas, postgres_server
):
    a = await replicas(timeout=1.0)
    b = await replicas(timeout=1.0)
    seen_by_b: list[str] = []
    b.add_listener(lambda changes: seen_by_b.extend(c.app_wrapper.id for c in changes))
    await a.insert_app_wrappers([new("before")])
    postgres_server.stop("immediate")
    try:
        with pytest.raises(StoreUnavailable, match="hub database unavailable"):
            await a.insert_app_wrappers([new("while-down")])
        with pytest.raises(StoreUnavailable, match="hub database unavailable"):
            await b.get_app_wrapper("before")
    finally:
        postgres_server.start()

    async def written():
        try:
            return await a.insert_app_wrappers([new("after")])
        except StoreUnavailable:
            return None

    [after] = await poll(written, within=20, what="the store to write again after the restart")
    assert after.created
    assert await a.get_app_wrapper("while-down") is None  # refused, so never half-written
    assert (await b.get_app_wrapper("after")).id == "after"
    await poll(lambda: asyncio.sleep(0, "after" in seen_by_b), within=20, what="B's follower to reconnect")
    assert seen_by_b == ["before", "after"]


async def test_replicas_updating_the_same_rows_at_once_never_deadlock(replicas):
    """Every write takes the revision lock before any row lock: one lock order on every replica."""
    a, b = await replicas(), await replicas()
    await a.insert_app_wrappers([new("x"), new("y")])

    def touch(record):
        record.message.status.reason = f"{record.message.status.reason}+"
        return True

    for _ in range(15):
        results = await asyncio.gather(
            a.update_app_wrappers([Update("x", touch)]),
            a.update_app_wrappers([Update("y", touch)]),
            b.update_app_wrappers([Update("y", touch)]),
            b.update_app_wrappers([Update("x", touch)]),
            return_exceptions=True,
        )
        assert not [r for r in results if isinstance(r, BaseException)], results
    assert (await a.get_app_wrapper("x")).message.status.reason == "+" * 30


async def test_a_deposed_leaders_write_through_its_own_store_is_refused(replicas):
    """Two replicas, an injected clock: A leads, its lease runs out, B takes over, A's write is refused."""
    a, b = await replicas(), await replicas()
    await a.insert_app_wrappers([new("x")])
    lease_a = await a.acquire_or_renew("hub-scheduler", "a", 1000.0, 15.0)
    assert (await b.acquire_or_renew("hub-scheduler", "b", 1010.0, 15.0)).holder == "a"
    lease_b = await b.acquire_or_renew("hub-scheduler", "b", 1016.0, 15.0)
    assert (lease_b.holder, lease_b.epoch) == ("b", lease_a.epoch + 1)

    def plan(cluster):
        def mutate(record):
            record.message.status.phase = Phase.APP_WRAPPER_PHASE_SCHEDULED
            record.message.status.target_cluster = cluster
            return True

        return mutate

    with pytest.raises(Fenced, match=f"epoch {lease_b.epoch}"):
        await a.update_app_wrappers([Update("x", plan("old-leader"))], fence=lease_a.fence)
    [planned] = await b.update_app_wrappers([Update("x", plan("new-leader"))], fence=lease_b.fence)
    assert planned.message.status.target_cluster == "new-leader"
    assert (await a.get_app_wrapper("x")).message.status.target_cluster == "new-leader"
    # A asking again is told B leads; it cannot renew its way back in while B's lease runs.
    assert (await a.acquire_or_renew("hub-scheduler", "a", 1020.0, 15.0)).holder == "b"


async def test_a_database_that_cannot_be_reached_at_start_is_unavailable(postgres_server):
    url = postgres_server.url("postgres").replace(f"port={postgres_server.port}", "port=1")
    store = PostgresStore(url, now=lambda: NOW, timeout=0.5)
    with pytest.raises(StoreUnavailable, match="hub database unavailable"):
        await store.open()


async def test_a_replica_paused_inside_a_transaction_blocks_the_others_only_briefly(replicas):
    """A hub paused (SIGSTOP) between two statements of a write transaction keeps its row locks; the server
    ends such a session after the store's timeout, so the other replicas' writes and the lease go on."""
    other = await replicas(timeout=1.0)
    await other.insert_app_wrappers([new("before")])
    # What a paused replica leaves behind: its own store's connection, the revision row locked, no COMMIT.
    stalled = await replicas(timeout=1.0)
    async with stalled._engine.connection() as conn:
        await conn.execute("BEGIN")
        await conn.execute("SELECT value FROM meta WHERE key = 'revision' FOR UPDATE")
        began = time.monotonic()
        [outcome] = await asyncio.wait_for(other.insert_app_wrappers([new("while-paused")]), 15)
        waited = time.monotonic() - began
        assert outcome.created
        assert waited < 5, f"a write waited {waited:.1f} s behind an idle transaction"
        with pytest.raises(psycopg.errors.IdleInTransactionSessionTimeout):
            await conn.execute("SELECT 1")  # the server ended the idle transaction's session
    await other.insert_app_wrappers([new("after")])
    assert await stalled.get_app_wrapper("after") is not None  # the paused replica's pool replaced it


async def test_while_the_server_is_down_every_write_is_refused_within_the_timeout(replicas, postgres_server):
    """Writes arriving while a group waits for a connection are refused with it, not one timeout later each."""
    store = await replicas(timeout=1.0)
    postgres_server.stop("immediate")
    try:

        async def write(i: int) -> float:
            await asyncio.sleep(0.1 * i)
            began = time.monotonic()
            with pytest.raises(StoreUnavailable, match="hub database unavailable"):
                await store.insert_app_wrappers([new(f"down-{i}")])
            return time.monotonic() - began

        waited = await asyncio.gather(*(write(i) for i in range(15)))
    finally:
        postgres_server.start()
    assert max(waited) < 1.6, [round(w, 2) for w in waited]


async def test_the_writers_of_one_group_catch_up_with_one_read():
    """Every writer of a committed group waits for its change to be delivered; one read of the log serves all
    of them (it read once per writer, one after another, and the writers' answers queued behind the reads)."""
    reads: list[int] = []

    async def read_after(revision: int, limit: int) -> list[Change]:
        reads.append(revision)
        await asyncio.sleep(0.01)
        return [
            Change(r, ChangeKind.ADDED, common_pb2.AppWrapper(id=f"aw-{r}")) for r in range(revision + 1, 9)
        ][:limit]

    follower = ChangeFollower("postgresql://unused", read_after)
    delivered: list[int] = []
    follower.listeners.append(lambda changes: delivered.extend(c.revision for c in changes))
    await asyncio.gather(*(follower.catch_up(through=8) for _ in range(20)))
    assert delivered == list(range(1, 9))
    assert reads == [0]


async def test_concurrent_inserts_share_one_op_and_each_gets_its_own_answers(replicas):
    store = await replicas()
    await store.insert_app_wrappers([new("old")])
    calls = [[new(f"c{i}"), new("old")] if i % 2 else [new(f"c{i}")] for i in range(30)]
    calls.append([new("old", b"other spec")])
    answers = await asyncio.gather(*(store.insert_app_wrappers(items) for items in calls))
    for items, outcomes in zip(calls[:-1], answers[:-1], strict=True):
        assert [o.record.id for o in outcomes] == [i.message.id for i in items]
        assert [o.created for o in outcomes] == [i.message.id != "old" for i in items]
    [conflict] = answers[-1]
    assert conflict.record is None and conflict.error is not None
    assert len(await store.active_app_wrappers()) == 31
