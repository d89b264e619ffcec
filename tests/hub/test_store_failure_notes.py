"""Cycle notes for the hub's own database failures (issue 17, F9): a local disk or lock error is worded as the
hub database's, never as another service's; anything else is left to the caller's own wording."""

from __future__ import annotations

import errno
import sqlite3

import pytest

from services.hub.storagefaults import store_failure_note
from services.hub.store import StoreUnavailable


def test_a_real_lock_error_is_noted_as_the_hub_database(tmp_path):
    path = str(tmp_path / "hub.db")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x INTEGER)")
    holder.execute("BEGIN IMMEDIATE")
    writer = sqlite3.connect(path, isolation_level=None, timeout=0.05)
    with pytest.raises(sqlite3.OperationalError) as raised:
        writer.execute("INSERT INTO t VALUES (1)")
    holder.execute("ROLLBACK")
    note = store_failure_note(raised.value, "caching the forecast of KR")
    assert note is not None
    assert note.startswith("hub database while caching the forecast of KR: ")
    assert "locked by another process" in note and "carbon" not in note


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (sqlite3.OperationalError("disk I/O error"), "disk I/O error"),
        (sqlite3.OperationalError("database or disk is full"), "disk is full"),
        (OSError(errno.ENOSPC, "No space left on device"), "disk is full"),
        (StoreUnavailable("hub database unavailable: connection refused"), "connection refused"),
    ],
)
def test_store_failures_are_noted_as_the_hub_database(error, words):
    note = store_failure_note(error)
    assert note is not None and note.startswith("hub database: ") and words in note


@pytest.mark.parametrize("error", [ValueError("forecast has 3 values"), RuntimeError("carbon: UNAVAILABLE")])
def test_other_failures_are_not_the_database(error):
    assert store_failure_note(error) is None
