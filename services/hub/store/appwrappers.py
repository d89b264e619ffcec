"""AppWrappers in SQLite: idempotent inserts, mutations, the hub's queries, collection and carbon totals."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from google.protobuf.message import DecodeError

from caspian.v1 import common_pb2
from services.hub.phases import ACTIVE, PAST_GATE, SCHEDULED, TERMINAL, WITHOUT_PLANNED_CARBON
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

INSERT_APP_WRAPPER = f"INSERT INTO appwrappers({INSERT_COLUMNS}) VALUES ({', '.join('?' * 10)})"
INSERT_CHANGE = f"INSERT INTO changes({CHANGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
UPDATE_APP_WRAPPER = (
    f"UPDATE appwrappers SET {', '.join(c + ' = ?' for c in UPDATE_ASSIGNMENTS)} WHERE id = ?"
)


def marks(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


class SqliteAppWrappers:
    # Provided by SqliteStore (sqlite.py), declared for type checkers.
    _write: Callable[..., Awaitable[Any]]
    _read: Callable[..., Awaitable[Any]]
    quarantine_listeners: list[QuarantineListener]

    async def insert_app_wrappers(self, items: Sequence[NewAppWrapper]) -> list[InsertOutcome]:
        return await self._write(lambda tx: _insert(tx, items, self._report_quarantined))

    async def get_app_wrapper(self, app_wrapper_id: str) -> AppWrapperRecord | None:
        """The record, None for an unknown id; Quarantined for a record that does not decode."""

        def read(conn: sqlite3.Connection) -> tuple[AppWrapperRecord | None, tuple[str, str] | None, bool]:
            row = conn.execute(
                f"SELECT {RECORD_COLUMNS}, tenant FROM appwrappers WHERE id = ?", (app_wrapper_id,)
            ).fetchone()
            if row is None:
                held = conn.execute(
                    "SELECT error, tenant FROM quarantine WHERE id = ?", (app_wrapper_id,)
                ).fetchone()
                return None, (held[0], held[1]) if held else None, False
            try:
                return record_from_row(row[:-1]), None, False
            except DecodeError as exc:
                return None, (str(exc) or "DecodeError", row[-1]), True

        record, held, fresh = await self._read(read)
        if held is not None:
            error, tenant = held
            if fresh:
                await self.quarantine_app_wrappers([(app_wrapper_id, error)])
            raise Quarantined(app_wrapper_id, error, tenant)
        return record

    async def quarantine_app_wrappers(self, bad: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        """Move each (id, error) row that still does not decode to `quarantine`; report and return those."""
        if not bad:
            return []

        def op(tx) -> list[tuple[str, str]]:
            moved = (_move(tx, i, error, self._report_quarantined) for i, error in bad)
            return [m for m in moved if m is not None]

        return await self._write(op)

    async def quarantined_count(self) -> int:
        return await self._read(lambda conn: conn.execute("SELECT COUNT(*) FROM quarantine").fetchone()[0])

    def _report_quarantined(self, app_wrapper_id: str, error: str) -> None:
        report(self.quarantine_listeners, [(app_wrapper_id, error)])

    async def list_app_wrappers(self, query: ListQuery) -> ListPage:
        where, params = _filters(query)

        def read(conn: sqlite3.Connection) -> tuple[ListPage, list[tuple[str, str]]]:
            total = conn.execute(f"SELECT COUNT(*) FROM appwrappers {where}", params).fetchone()[0]
            keyset = ("AND" if where else "WHERE") + " seq > ?"
            rows = conn.execute(
                f"SELECT seq, id, body FROM appwrappers {where} {keyset} ORDER BY seq LIMIT ?",
                [*params, query.after_seq, query.limit + 1],
            ).fetchall()
            more = len(rows) > query.limit
            rows = rows[: query.limit]
            items, bad = decode_each(rows, lambda row: common_pb2.AppWrapper.FromString(row[2]), id_at=1)
            page = ListPage(items, rows[-1][0] if more and rows else None, total - len(bad))
            return page, bad

        page, bad = await self._read(read)
        await self.quarantine_app_wrappers(bad)
        return page

    async def active_app_wrappers(self) -> list[AppWrapperRecord]:
        def read(conn: sqlite3.Connection) -> list[tuple]:
            return conn.execute(
                f"SELECT id, {RECORD_COLUMNS} FROM appwrappers WHERE phase IN ({marks(ACTIVE)}) ORDER BY seq",
                ACTIVE,
            ).fetchall()

        return await self._decoded(await self._read(read))

    async def gate_app_wrappers(self, now_s: float) -> list[AppWrapperRecord]:
        def read(conn: sqlite3.Connection) -> list[tuple]:
            return conn.execute(
                f"SELECT id, {RECORD_COLUMNS} FROM appwrappers WHERE phase IN ({marks(PAST_GATE)}) "
                "OR (phase = ? AND (planned_start IS NULL OR planned_start <= ?)) ORDER BY seq",
                (*PAST_GATE, SCHEDULED, now_s),
            ).fetchall()

        return await self._decoded(await self._read(read))

    async def next_planned_start(self, after_s: float) -> float | None:
        def read(conn: sqlite3.Connection) -> float | None:
            return conn.execute(
                "SELECT MIN(planned_start) FROM appwrappers WHERE phase = ? AND planned_start > ?",
                (SCHEDULED, after_s),
            ).fetchone()[0]

        return await self._read(read)

    async def _decoded(self, rows: Sequence[Sequence[Any]]) -> list[AppWrapperRecord]:
        """Records of (id, RECORD_COLUMNS...) rows; those that do not decode are quarantined and left out."""
        records, bad = decode_each(rows, lambda row: record_from_row(row[1:]))
        await self.quarantine_app_wrappers(bad)
        return records

    async def app_wrappers_needing_accounting(self, limit: int = 1000) -> list[AppWrapperRecord]:
        return await self._flagged("needs_accounting", limit)

    async def app_wrappers_needing_cleanup(self, limit: int = 1000) -> list[AppWrapperRecord]:
        return await self._flagged("needs_cleanup", limit)

    async def _flagged(self, column: str, limit: int) -> list[AppWrapperRecord]:
        def read(conn: sqlite3.Connection) -> list[tuple]:
            return conn.execute(
                f"SELECT id, {RECORD_COLUMNS} FROM appwrappers WHERE {column} = 1 ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()

        return await self._decoded(await self._read(read))

    async def update_app_wrappers(
        self, updates: Sequence[Update], *, fence: Fence | None = None
    ) -> list[AppWrapperRecord | None]:
        if not updates:
            return []
        return await self._write(lambda tx: _update(tx, updates, self._report_quarantined), fence)

    async def phase_counts(self) -> dict[int, int]:
        def read(conn: sqlite3.Connection) -> dict[int, int]:
            return dict(conn.execute("SELECT phase, COUNT(*) FROM appwrappers GROUP BY phase").fetchall())

        return await self._read(read)

    async def collect_finished(self, before: float, limit: int = 1000, *, fence: Fence | None = None) -> int:
        """Delete up to `limit` finished AppWrappers (phases.TERMINAL) last changed before `before` whose
        accounting and clean-up are done; their carbon figures stay in the totals. Each deletion is a DELETED
        change for watchers. Returns how many went."""

        def op(tx) -> int:
            rows = tx.conn.execute(
                "SELECT id, phase, tenant, accounted, actual_gco2, counterfactual_gco2, body FROM appwrappers "
                f"WHERE phase IN ({marks(TERMINAL)}) AND updated < ? AND needs_accounting = 0 "
                "AND needs_cleanup = 0 ORDER BY updated LIMIT ?",
                (*TERMINAL, before, limit),
            ).fetchall()
            damaged = [row for row in rows if not decodes(row[6])]
            for row in damaged:  # no last state to tell watchers: set aside, not deleted
                _move(tx, row[0], "does not decode", self._report_quarantined)
            rows = [row for row in rows if row not in damaged]
            if not rows:
                return 0
            for key, add in collected_totals(rows):
                tx.conn.execute(
                    "UPDATE meta SET value = CAST(CAST(value AS REAL) + ? AS TEXT) WHERE key = ?", (add, key)
                )
            change_rows = []
            for app_wrapper_id, phase, tenant, _, _, _, body in rows:
                change_row, change = deleted_row(app_wrapper_id, phase, tenant, body, tx.next_revision())
                change_rows.append(change_row)
                tx.changes.append(change)
            tx.conn.executemany("DELETE FROM appwrappers WHERE id = ?", [(r[0],) for r in rows])
            tx.conn.executemany(INSERT_CHANGE, change_rows)
            return len(rows)

        return await self._write(op, fence)

    async def carbon_totals(self) -> CarbonTotals:
        def read(conn: sqlite3.Connection) -> CarbonTotals:
            planned = conn.execute(
                "SELECT COALESCE(SUM(planned_gco2), 0) FROM appwrappers "
                f"WHERE phase NOT IN ({marks(WITHOUT_PLANNED_CARBON)})",
                WITHOUT_PLANNED_CARBON,
            ).fetchone()[0]
            emitted, counterfactual, count = conn.execute(
                "SELECT COALESCE(SUM(actual_gco2), 0), COALESCE(SUM(counterfactual_gco2), 0), COUNT(*) "
                "FROM appwrappers WHERE accounted = 1"
            ).fetchone()
            meta = dict(conn.execute("SELECT key, value FROM meta WHERE key LIKE 'collected_%'").fetchall())
            return totals(planned, emitted, counterfactual, count, meta)

        return await self._read(read)


def collected_totals(rows: Sequence[Sequence[Any]]) -> list[tuple[str, float]]:
    """What collecting `rows` (id, phase, tenant, accounted, actual, counterfactual, ...) adds to `meta`."""
    accounted = [r for r in rows if r[3]]
    return [
        ("collected", len(rows)),
        ("collected_accounted", len(accounted)),
        ("collected_emitted_gco2", sum(r[4] for r in accounted)),
        ("collected_counterfactual_gco2", sum(r[5] for r in accounted)),
    ]


def totals(planned, emitted, counterfactual, count, meta: dict[str, str]) -> CarbonTotals:
    return CarbonTotals(
        float(planned),
        float(emitted) + float(meta["collected_emitted_gco2"]),
        float(counterfactual) + float(meta["collected_counterfactual_gco2"]),
        int(count) + int(float(meta["collected_accounted"])),
    )


def _filters(query: ListQuery) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if query.phases:
        clauses.append(f"phase IN ({marks(query.phases)})")
        params.extend(query.phases)
    if query.cluster:
        clauses.append("target_cluster = ?")
        params.append(query.cluster)
    if query.tenant:
        clauses.append("tenant = ?")
        params.append(query.tenant)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


def _move(tx, app_wrapper_id: str, error: str, report_one: QuarantineListener) -> tuple[str, str] | None:
    """In the writer's transaction: move the row to `quarantine` if it still does not decode."""
    row = tx.conn.execute(SELECT_FOR_MOVE, (app_wrapper_id,)).fetchone()
    if row is None or decodes(row[3]):
        return None  # gone, or rewritten since it was read
    tx.conn.execute(
        f"INSERT OR REPLACE INTO quarantine({QUARANTINE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (app_wrapper_id, *row, error, tx.now.timestamp()),
    )
    tx.conn.execute("DELETE FROM appwrappers WHERE id = ?", (app_wrapper_id,))
    report_one(app_wrapper_id, error)
    return app_wrapper_id, error


def _existing(
    tx, ids: list[str], report_one: QuarantineListener
) -> dict[str, AppWrapperRecord | Quarantined]:
    """The stored record of each id present; Quarantined for one set aside (now or before)."""
    found: dict[str, AppWrapperRecord | Quarantined] = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        rows = tx.conn.execute(
            f"SELECT id, {RECORD_COLUMNS} FROM appwrappers WHERE id IN ({marks(chunk)})", chunk
        ).fetchall()
        records, bad = decode_each(rows, lambda row: (row[0], record_from_row(row[1:])))
        found.update(records)
        for app_wrapper_id, error in bad:
            _move(tx, app_wrapper_id, error, report_one)
        held = tx.conn.execute(f"SELECT id, error FROM quarantine WHERE id IN ({marks(chunk)})", chunk)
        found.update((row[0], Quarantined(row[0], row[1])) for row in held.fetchall())
    return found


def _insert(tx, items: Sequence[NewAppWrapper], report_one: QuarantineListener) -> list[InsertOutcome]:
    """Insert new AppWrappers; an id already present answers with the stored one (same spec) or a conflict.

    The single writer makes the read of existing ids safe (nothing else writes between it and the insert).
    Existing ids are found with one query per 500, and new rows go in with executemany: on the bulk path the
    per-row cost is SQLite's, not Python's.
    """
    known = _existing(tx, [item.message.id for item in items], report_one)
    at = WriteTime.of(tx.now)
    outcomes: list[InsertOutcome] = []
    rows: list[tuple] = []
    change_rows: list[tuple] = []
    for item in items:
        existing = known.get(item.message.id)
        if isinstance(existing, Quarantined):
            outcomes.append(InsertOutcome(None, False, existing))
            continue
        if existing is not None:
            if existing.fingerprint == item.fingerprint:
                outcomes.append(InsertOutcome(existing, False))
            else:
                outcomes.append(InsertOutcome(None, False, conflicting_spec(item.message.id)))
            continue
        row, change_row, change = new_row(item, tx.next_revision(), at)
        rows.append(row)
        change_rows.append(change_row)
        tx.changes.append(change)
        record = AppWrapperRecord(item.message, fingerprint=item.fingerprint)
        known[item.message.id] = record  # a repeat later in the same batch is a retry of this one
        outcomes.append(InsertOutcome(record, True))
    if rows:
        tx.conn.executemany(INSERT_APP_WRAPPER, rows)
        tx.conn.executemany(INSERT_CHANGE, change_rows)
    return outcomes


def _update(tx, updates: Sequence[Update], report_one: QuarantineListener) -> list[AppWrapperRecord | None]:
    conn = tx.conn
    at = WriteTime.of(tx.now)
    results: list[AppWrapperRecord | None] = []
    for update in updates:
        row = conn.execute(f"SELECT {RECORD_COLUMNS} FROM appwrappers WHERE id = ?", (update.id,)).fetchone()
        try:
            record = record_from_row(row) if row else None
        except DecodeError as exc:  # set aside; to the caller it is gone
            _move(tx, update.id, str(exc) or "DecodeError", report_one)
            record = None
        if record is None or (
            update.expect_revision is not None and record.revision != update.expect_revision
        ):
            results.append(None)
            continue
        previous_phase = record.phase
        if not update.mutate(record):
            results.append(record)
            continue
        values, change_row, change = updated_row(record, tx.next_revision(), at, previous_phase)
        conn.execute(UPDATE_APP_WRAPPER, values)
        conn.execute(INSERT_CHANGE, change_row)
        tx.changes.append(change)
        results.append(record)
    return results
