"""Quarantine (issue 17, F10): a row whose stored record no longer decodes is set aside, reported once, and
every read and write goes on without it; on both backends (`make_store` from test_store.py)."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest

from caspian.v1 import common_pb2
from services.hub.store import ListQuery, Quarantined, Update
from tests.hub import test_store
from tests.hub.test_store import new

make_store = test_store.make_store  # the fixture: every test here runs on SQLite and on PostgreSQL

Phase = common_pb2.AppWrapperPhase
GARBAGE = b"\xff\xff\xff\xff"


async def damage(store, app_wrapper_id: str) -> None:
    """Overwrite the row's record with bytes that do not decode, behind the store's back."""
    if hasattr(store, "url"):
        async with await psycopg.AsyncConnection.connect(store.url, autocommit=True) as conn:
            await conn.execute("UPDATE appwrappers SET body = %s WHERE id = %s", (GARBAGE, app_wrapper_id))
    else:
        with sqlite3.connect(store.path, timeout=10) as conn:
            conn.execute("UPDATE appwrappers SET body = ? WHERE id = ?", (GARBAGE, app_wrapper_id))


async def quarantine_rows(store) -> list[tuple]:
    sql = "SELECT id, tenant, phase, error FROM quarantine ORDER BY id"
    if hasattr(store, "url"):
        async with await psycopg.AsyncConnection.connect(store.url, autocommit=True) as conn:
            return await (await conn.execute(sql)).fetchall()
    with sqlite3.connect(store.path, timeout=10) as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture
async def damaged(make_store):
    """A store with a, b, c pending, b damaged, and a list of what its listener heard."""
    store = await make_store()
    heard: list[tuple[str, str]] = []
    store.quarantine_listeners.append(lambda i, error: heard.append((i, error)))
    await store.insert_app_wrappers([new("a"), new("b", tenant="t2"), new("c")])
    await damage(store, "b")
    return store, heard


async def test_the_scheduling_read_skips_and_reports_a_row_that_does_not_decode(damaged):
    store, heard = damaged
    active = await store.active_app_wrappers()
    assert [r.id for r in active] == ["a", "c"]
    assert [i for i, _ in heard] == ["b"]
    assert await store.quarantined_count() == 1
    rows = await quarantine_rows(store)
    assert [(r[0], r[1], r[2]) for r in rows] == [("b", "t2", Phase.APP_WRAPPER_PHASE_PENDING)]
    assert rows[0][3]  # the decoder's error is kept
    # Reported once: later reads no longer meet it.
    assert [r.id for r in await store.active_app_wrappers()] == ["a", "c"]
    assert len(heard) == 1
    assert (await store.phase_counts()) == {Phase.APP_WRAPPER_PHASE_PENDING: 2}


async def test_list_goes_on_and_get_names_the_quarantined_id(damaged):
    store, heard = damaged
    page = await store.list_app_wrappers(ListQuery(limit=10))
    assert [m.id for m in page.items] == ["a", "c"] and page.total == 2
    assert [i for i, _ in heard] == ["b"]
    with pytest.raises(Quarantined) as raised:
        await store.get_app_wrapper("b")
    assert raised.value.code == "DATA_LOSS" and "'b' is quarantined" in str(raised.value)
    assert raised.value.tenant == "t2"  # so that the hub answers another tenant NOT_FOUND
    assert (await store.get_app_wrapper("a")).id == "a"
    assert await store.get_app_wrapper("nope") is None
    assert len(heard) == 1


async def test_get_quarantines_what_it_cannot_decode(damaged):
    store, heard = damaged
    with pytest.raises(Quarantined) as raised:
        await store.get_app_wrapper("b")
    assert raised.value.tenant == "t2"
    assert [i for i, _ in heard] == ["b"] and await store.quarantined_count() == 1


async def test_the_id_of_a_quarantined_row_stays_taken(damaged):
    store, heard = damaged
    outcomes = await store.insert_app_wrappers([new("b", tenant="t2"), new("d")])
    assert isinstance(outcomes[0].error, Quarantined) and not outcomes[0].created
    assert outcomes[1].created  # the rest of the batch goes in
    assert [i for i, _ in heard] == ["b"]  # found by the insert, set aside by it
    outcomes = await store.insert_app_wrappers([new("b", tenant="t2")])
    assert isinstance(outcomes[0].error, Quarantined)
    assert len(heard) == 1


async def test_a_write_that_meets_a_damaged_row_sets_it_aside_and_the_others_commit(damaged):
    store, heard = damaged

    def run(record) -> bool:
        record.message.status.phase = Phase.APP_WRAPPER_PHASE_SCHEDULED
        return True

    results = await store.update_app_wrappers([Update("a", run), Update("b", run), Update("c", run)])
    assert results[1] is None
    assert [r.phase for r in results if r is not None] == [Phase.APP_WRAPPER_PHASE_SCHEDULED] * 2
    assert [i for i, _ in heard] == ["b"]
    assert (await store.get_app_wrapper("c")).phase == Phase.APP_WRAPPER_PHASE_SCHEDULED


async def test_collection_sets_a_damaged_finished_row_aside_instead_of_counting_it(make_store):
    store = await make_store()
    heard: list[str] = []
    store.quarantine_listeners.append(lambda i, _error: heard.append(i))
    await store.insert_app_wrappers([new("done"), new("broken")])

    def finish(record) -> bool:
        record.message.status.phase = Phase.APP_WRAPPER_PHASE_SUCCEEDED
        return True

    await store.update_app_wrappers([Update("done", finish), Update("broken", finish)])
    await damage(store, "broken")
    far_future = 4e9
    assert await store.collect_finished(far_future) == 1
    assert heard == ["broken"]
    rows = await quarantine_rows(store)
    assert [(r[0], r[2]) for r in rows] == [("broken", Phase.APP_WRAPPER_PHASE_SUCCEEDED)]
    assert await store.phase_counts() == {}
