"""AppWrappers in PostgreSQL: inserts decided by the unique id, mutations under row locks, the hub's queries."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from google.protobuf.message import DecodeError

from caspian.v1 import common_pb2
from services.hub.phases import ACTIVE, PAST_GATE, SCHEDULED, TERMINAL, WITHOUT_PLANNED_CARBON
from services.hub.store.appwrappers import collected_totals, totals
from services.hub.store.postgres.coalesce import InsertCoalescer
from services.hub.store.postgres.engine import PgEngine, PgTx, one_row
from services.hub.store.quarantine import (
    QUARANTINE_COLUMNS,
    SELECT_FOR_MOVE,
    Quarantined,
    QuarantineListener,
    decode_each,
    decodes,
    report,
)
from services.hub.store.records import (
    AppWrapperRecord,
    CarbonTotals,
    Change,
    Fence,
    InsertOutcome,
    ListPage,
    ListQuery,
    NewAppWrapper,
    Update,
)
from services.hub.store.rows import (
    CHANGE_COLUMNS,
    INSERT_COLUMNS,
    RECORD_COLUMNS,
    UPDATE_ASSIGNMENTS,
    WriteTime,
    conflicting_spec,
    deleted_row,
    new_row,
    record_from_row,
    updated_row,
)

# Change-log rows in one statement, however many (one INSERT per row cost a round trip each in bulk).
INSERT_CHANGES = (
    f"INSERT INTO changes({CHANGE_COLUMNS}) "
    "SELECT * FROM unnest(%s::bigint[], %s::text[], %s::int[], %s::int[], %s::text[], %s::int[], %s::bytea[])"
)
UPDATE_APP_WRAPPER = (
    f"UPDATE appwrappers SET {', '.join(c + ' = %s' for c in UPDATE_ASSIGNMENTS)} WHERE id = %s"
)
# One statement for a whole group: the unique id decides which rows are new, whatever other replicas do.
INSERT_NEW = (
    f"INSERT INTO appwrappers({INSERT_COLUMNS}) "
    "SELECT * FROM unnest(%s::text[], %s::text[], %s::int[], %s::text[], %s::bigint[], %s::text[], "
    "%s::bytea[], %s::float8[], %s::float8[], %s::bytea[]) "
    "ON CONFLICT (id) DO NOTHING RETURNING id"
)


async def insert_changes(conn: Any, rows: Sequence[tuple]) -> None:
    if rows:
        await conn.execute(INSERT_CHANGES, [list(column) for column in zip(*rows, strict=True)])


class PgAppWrappers:
    # Provided by PostgresStore (store.py), declared for type checkers.
    _engine: PgEngine
    _write: Callable[..., Awaitable[Any]]
    _inserts: InsertCoalescer
    quarantine_listeners: list[QuarantineListener]

    async def insert_app_wrappers(self, items: Sequence[NewAppWrapper]) -> list[InsertOutcome]:
        return await self._inserts.insert(items)

    async def get_app_wrapper(self, app_wrapper_id: str) -> AppWrapperRecord | None:
        """The record, None for an unknown id; Quarantined for a record that does not decode."""
        rows = await self._engine.read(
            f"SELECT {RECORD_COLUMNS}, tenant FROM appwrappers WHERE id = %s", (app_wrapper_id,)
        )
        if not rows:
            held = await self._engine.read(
                "SELECT error, tenant FROM quarantine WHERE id = %s", (app_wrapper_id,)
            )
            if held:
                raise Quarantined(app_wrapper_id, held[0][0], held[0][1])
            return None
        try:
            return record_from_row(rows[0][:-1])
        except DecodeError as exc:
            error = str(exc) or "DecodeError"
            await self.quarantine_app_wrappers([(app_wrapper_id, error)])
            raise Quarantined(app_wrapper_id, error, rows[0][-1]) from None

    async def quarantine_app_wrappers(self, bad: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        """Move each (id, error) row that still does not decode to `quarantine`; report and return those."""
        if not bad:
            return []

        async def op(tx: PgTx) -> list[tuple[str, str]]:
            moved = [await _move(tx, i, error, self._report_quarantined) for i, error in bad]
            return [m for m in moved if m is not None]

        return await self._write(op)

    async def quarantined_count(self) -> int:
        return int((await self._engine.read("SELECT COUNT(*) FROM quarantine"))[0][0])

    def _report_quarantined(self, app_wrapper_id: str, error: str) -> None:
        report(self.quarantine_listeners, [(app_wrapper_id, error)])

    async def _decoded(self, rows: Sequence[Sequence[Any]]) -> list[AppWrapperRecord]:
        """Records of (id, RECORD_COLUMNS...) rows; those that do not decode are quarantined and left out."""
        records, bad = decode_each(rows, lambda row: record_from_row(row[1:]))
        await self.quarantine_app_wrappers(bad)
        return records

    async def list_app_wrappers(self, query: ListQuery) -> ListPage:
        where, params = _filters(query)
        keyset = ("AND" if where else "WHERE") + " seq > %s"
        async with self._engine.connection() as conn:
            # One snapshot for the count and the page.
            async with conn.transaction():
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                cur = await conn.execute(f"SELECT COUNT(*) FROM appwrappers {where}", params)
                total = (await one_row(cur))[0]
                cur = await conn.execute(
                    f"SELECT seq, id, body FROM appwrappers {where} {keyset} ORDER BY seq LIMIT %s",
                    [*params, query.after_seq, query.limit + 1],
                )
                rows = await cur.fetchall()
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        items, bad = decode_each(rows, lambda row: common_pb2.AppWrapper.FromString(row[2]), id_at=1)
        await self.quarantine_app_wrappers(bad)
        return ListPage(items, rows[-1][0] if more and rows else None, total - len(bad))

    async def active_app_wrappers(self) -> list[AppWrapperRecord]:
        rows = await self._engine.read(
            f"SELECT id, {RECORD_COLUMNS} FROM appwrappers WHERE phase = ANY(%s) ORDER BY seq",
            (list(ACTIVE),),
        )
        return await self._decoded(rows)

    async def gate_app_wrappers(self, now_s: float) -> list[AppWrapperRecord]:
        rows = await self._engine.read(
            f"SELECT id, {RECORD_COLUMNS} FROM appwrappers WHERE phase = ANY(%s) "
            "OR (phase = %s AND (planned_start IS NULL OR planned_start <= %s)) ORDER BY seq",
            (list(PAST_GATE), SCHEDULED, now_s),
        )
        return await self._decoded(rows)

    async def next_planned_start(self, after_s: float) -> float | None:
        rows = await self._engine.read(
            "SELECT MIN(planned_start) FROM appwrappers WHERE phase = %s AND planned_start > %s",
            (SCHEDULED, after_s),
        )
        return rows[0][0]

    async def app_wrappers_needing_accounting(self, limit: int = 1000) -> list[AppWrapperRecord]:
        return await self._flagged("needs_accounting", limit)

    async def app_wrappers_needing_cleanup(self, limit: int = 1000) -> list[AppWrapperRecord]:
        return await self._flagged("needs_cleanup", limit)

    async def _flagged(self, column: str, limit: int) -> list[AppWrapperRecord]:
        rows = await self._engine.read(
            f"SELECT id, {RECORD_COLUMNS} FROM appwrappers WHERE {column} = 1 ORDER BY seq LIMIT %s", (limit,)
        )
        return await self._decoded(rows)

    async def update_app_wrappers(
        self, updates: Sequence[Update], *, fence: Fence | None = None
    ) -> list[AppWrapperRecord | None]:
        if not updates:
            return []
        return await self._write(lambda tx: _update(tx, updates, self._report_quarantined), fence)

    async def phase_counts(self) -> dict[int, int]:
        return dict(await self._engine.read("SELECT phase, COUNT(*) FROM appwrappers GROUP BY phase"))

    async def collect_finished(self, before: float, limit: int = 1000, *, fence: Fence | None = None) -> int:
        """As SqliteStore.collect_finished; rows are locked so a concurrent change waits or is skipped."""

        async def op(tx: PgTx) -> int:
            await tx.lock_revisions()  # before the row locks, as every writer does
            cur = await tx.conn.execute(
                "SELECT id, phase, tenant, accounted, actual_gco2, counterfactual_gco2, body FROM appwrappers "
                "WHERE phase = ANY(%s) AND updated < %s AND needs_accounting = 0 AND needs_cleanup = 0 "
                "ORDER BY updated LIMIT %s FOR UPDATE SKIP LOCKED",
                (list(TERMINAL), before, limit),
            )
            rows = await cur.fetchall()
            damaged = [row for row in rows if not decodes(row[6])]
            for row in damaged:  # no last state to tell watchers: set aside, not deleted
                await _move(tx, row[0], "does not decode", self._report_quarantined)
            rows = [row for row in rows if row not in damaged]
            if not rows:
                return 0
            for key, add in collected_totals(rows):
                await tx.conn.execute(
                    "UPDATE meta SET value = (CAST(value AS DOUBLE PRECISION) + %s)::text WHERE key = %s",
                    (add, key),
                )
            change_rows = []
            for app_wrapper_id, phase, tenant, _, _, _, body in rows:
                change_row, change = deleted_row(
                    app_wrapper_id, phase, tenant, body, await tx.next_revision()
                )
                change_rows.append(change_row)
                tx.changes.append(change)
            async with tx.conn.cursor() as cur:
                await cur.execute("DELETE FROM appwrappers WHERE id = ANY(%s)", ([r[0] for r in rows],))
                await insert_changes(cur, change_rows)
            return len(rows)

        return await self._write(op, fence)

    async def carbon_totals(self) -> CarbonTotals:
        async with self._engine.connection() as conn:
            async with conn.transaction():
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                cur = await conn.execute(
                    "SELECT COALESCE(SUM(planned_gco2), 0) FROM appwrappers WHERE NOT (phase = ANY(%s))",
                    (list(WITHOUT_PLANNED_CARBON),),
                )
                planned = (await one_row(cur))[0]
                cur = await conn.execute(
                    "SELECT COALESCE(SUM(actual_gco2), 0), COALESCE(SUM(counterfactual_gco2), 0), COUNT(*) "
                    "FROM appwrappers WHERE accounted = 1"
                )
                emitted, counterfactual, count = await one_row(cur)
                cur = await conn.execute("SELECT key, value FROM meta WHERE key LIKE 'collected_%%'")
                meta = dict(await cur.fetchall())
        return totals(planned, emitted, counterfactual, count, meta)


def _filters(query: ListQuery) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if query.phases:
        clauses.append("phase = ANY(%s)")
        params.append(list(query.phases))
    if query.cluster:
        clauses.append("target_cluster = %s")
        params.append(query.cluster)
    if query.tenant:
        clauses.append("tenant = %s")
        params.append(query.tenant)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


async def _move(
    tx: PgTx, app_wrapper_id: str, error: str, report_one: QuarantineListener
) -> tuple[str, str] | None:
    """In the group's transaction: move the row to `quarantine` if it still does not decode."""
    cur = await tx.conn.execute(SELECT_FOR_MOVE.replace("?", "%s") + " FOR UPDATE", (app_wrapper_id,))
    row = await cur.fetchone()
    if row is None or decodes(row[3]):
        return None  # gone, or rewritten since it was read
    await tx.conn.execute(
        f"INSERT INTO quarantine({QUARANTINE_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (id) DO UPDATE SET body = EXCLUDED.body, error = EXCLUDED.error, "
        "quarantined_at = EXCLUDED.quarantined_at",
        (app_wrapper_id, *row, error, tx.now.timestamp()),
    )
    await tx.conn.execute("DELETE FROM appwrappers WHERE id = %s", (app_wrapper_id,))
    report_one(app_wrapper_id, error)
    return app_wrapper_id, error


async def _existing(
    tx: PgTx, ids: list[str], report_one: QuarantineListener
) -> dict[str, AppWrapperRecord | Quarantined]:
    """The stored record of each id present; Quarantined for one set aside (now or before)."""
    cur = await tx.conn.execute(f"SELECT id, {RECORD_COLUMNS} FROM appwrappers WHERE id = ANY(%s)", (ids,))
    records, bad = decode_each(await cur.fetchall(), lambda row: (row[0], record_from_row(row[1:])))
    found: dict[str, AppWrapperRecord | Quarantined] = dict(records)
    for app_wrapper_id, error in bad:
        await _move(tx, app_wrapper_id, error, report_one)
    cur = await tx.conn.execute("SELECT id, error FROM quarantine WHERE id = ANY(%s)", (ids,))
    found.update((row[0], Quarantined(row[0], row[1])) for row in await cur.fetchall())
    return found


async def insert_new(
    tx: PgTx, items: Sequence[NewAppWrapper], report_one: QuarantineListener
) -> list[InsertOutcome]:
    """Insert new AppWrappers; an id already present answers with the stored one (same spec) or a conflict.

    The unique constraint on `id` decides which rows go in (ON CONFLICT DO NOTHING RETURNING id): a row that
    exists, whoever committed it, is never overwritten, and the item answers with it, as a retry does. The
    ids are looked up first only so that a retry costs no revision: the revision lock is taken before the
    look-up, and every replica's inserts take it, so what the look-up misses is what the insert adds.
    """
    await tx.lock_revisions()
    ids = list(dict.fromkeys(item.message.id for item in items))
    known = await _existing(tx, ids, report_one)
    fresh: dict[str, tuple[NewAppWrapper, tuple, tuple, Change]] = {}
    at = WriteTime.of(tx.now)
    for item in items:
        app_wrapper_id = item.message.id
        if app_wrapper_id not in known and app_wrapper_id not in fresh:
            row, change_row, change = new_row(item, await tx.next_revision(), at)
            fresh[app_wrapper_id] = (item, row, change_row, change)
    inserted: set[str] = set()
    if fresh:
        columns = zip(*(row for _, row, _, _ in fresh.values()), strict=True)
        cur = await tx.conn.execute(INSERT_NEW, [list(column) for column in columns])
        inserted = {row[0] for row in await cur.fetchall()}
        await insert_changes(tx.conn, [fresh[i][2] for i in fresh if i in inserted])
        tx.changes.extend(fresh[i][3] for i in fresh if i in inserted)
        lost = [i for i in fresh if i not in inserted]
        if lost:  # committed by someone else after all: answer with theirs (its revision stays unused)
            known.update(await _existing(tx, lost, report_one))
    outcomes: list[InsertOutcome] = []
    for item in items:
        app_wrapper_id = item.message.id
        if app_wrapper_id in inserted:
            inserted.discard(app_wrapper_id)  # a repeat later in the same call is a retry of this one
            record = AppWrapperRecord(item.message, fingerprint=item.fingerprint)
            known[app_wrapper_id] = record
            outcomes.append(InsertOutcome(record, True))
            continue
        existing = known[app_wrapper_id]
        if isinstance(existing, Quarantined):
            outcomes.append(InsertOutcome(None, False, existing))
        elif existing.fingerprint == item.fingerprint:
            outcomes.append(InsertOutcome(existing, False))
        else:
            outcomes.append(InsertOutcome(None, False, conflicting_spec(app_wrapper_id)))
    return outcomes


async def _update(
    tx: PgTx, updates: Sequence[Update], report_one: QuarantineListener
) -> list[AppWrapperRecord | None]:
    ids = list(dict.fromkeys(u.id for u in updates))
    # The revision lock first, then the rows: one lock order for every writer on every replica (a row lock
    # taken before it would deadlock against a group that holds it and wants the row).
    await tx.lock_revisions()
    at = WriteTime.of(tx.now)
    cur = await tx.conn.execute(
        f"SELECT id, {RECORD_COLUMNS} FROM appwrappers WHERE id = ANY(%s) ORDER BY id FOR UPDATE", (ids,)
    )
    decoded, bad = decode_each(await cur.fetchall(), lambda row: (row[0], record_from_row(row[1:])))
    current = dict(decoded)
    for app_wrapper_id, error in bad:  # set aside; to the caller it is gone
        await _move(tx, app_wrapper_id, error, report_one)
    results: list[AppWrapperRecord | None] = []
    rows: list[tuple] = []
    change_rows: list[tuple] = []
    for update in updates:
        record = current.get(update.id)
        if record is None or (
            update.expect_revision is not None and record.revision != update.expect_revision
        ):
            results.append(None)
            continue
        previous_phase = record.phase
        if not update.mutate(record):
            results.append(record)
            continue
        values, change_row, change = updated_row(record, await tx.next_revision(), at, previous_phase)
        rows.append(values)
        change_rows.append(change_row)
        tx.changes.append(change)
        # A later update of the same id in this call sees this one's result, as in SQLite.
        message = common_pb2.AppWrapper()
        message.CopyFrom(record.message)
        current[update.id] = dataclasses.replace(record, message=message)
        results.append(record)
    if rows:
        async with tx.conn.cursor() as cursor:
            await cursor.executemany(UPDATE_APP_WRAPPER, rows)
            await insert_changes(cursor, change_rows)
    return results
