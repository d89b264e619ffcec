"""What the SQLite store checks before the hub may start: the file is sound, and this process can write it.

A malformed database used to start without a word, and a database another process held locked started READY
and then failed every write. At open the store now runs `PRAGMA quick_check` (any finding refuses: SQLite
cannot say which are harmless, and a hub that starts on a damaged file may lose what it acknowledges), then,
after its migrations, a write probe: one small committed write to `meta`, waiting at most `lock_wait`
seconds for another process's lock. Any failure is `StoreRefused`, one line naming the file, what is wrong
and what to do. quick_check reads every page (0.31 s for 100,000 AppWrappers, 12,766 pages, here; docs/reliability.md).
"""

from __future__ import annotations

import sqlite3
import time

from services.hub.store.records import StoreRefused


def check_integrity(conn: sqlite3.Connection, path: str) -> None:
    findings = [row[0] for row in conn.execute("PRAGMA quick_check(20)").fetchall()]
    if findings and findings != ["ok"]:
        lines = [line for finding in findings for line in finding.splitlines() if not line.startswith("***")]
        first = lines[0] if lines else findings[0].replace("\n", " ")
        more = f" and {len(lines) - 1} more" if len(lines) > 1 else ""
        raise StoreRefused(
            f"hub database {path} fails its integrity check (PRAGMA quick_check: {first[:120]}{more}); "
            f"refusing to start: restore a backup, or recover it with `sqlite3 {path} .recover`"
        )


def probe_write(conn: sqlite3.Connection) -> None:
    """Commit one small write, as every write will: refuses a locked, read-only or full database now."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES ('opened_at', ?)", (f"{time.time():.3f}",)
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def refusal(path: str, exc: sqlite3.Error, lock_wait: float) -> StoreRefused:
    """The one line a hub exits with when its SQLite database fails at open."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
        why = f"is locked by another process (no write lock within {lock_wait:g} s); stop that process"
    elif name.startswith("SQLITE_READONLY") or "readonly" in text:
        why = "cannot be written (read-only file, directory or mount)"
    elif name.startswith("SQLITE_FULL") or "full" in text:
        why = "cannot be written: its disk is full"
    elif name.startswith("SQLITE_IOERR") or "disk i/o" in text.lower():
        why = f"cannot be written: a disk read or write failed ({text[:80]}: a full or failing disk, a limit)"
    elif (
        name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB"))
        or "malformed" in text
        or "not a database" in text
    ):
        why = f"is damaged ({text[:80]}); restore a backup, or try `sqlite3 {path} .recover`"
    elif name.startswith("SQLITE_CANTOPEN"):
        why = "cannot be opened (missing directory or permissions)"
    else:
        why = f"cannot be used ({text[:120]})"
    return StoreRefused(f"hub database {path} {why}; refusing to start")
