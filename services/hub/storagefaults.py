"""Store failures a caller can act on, answered as such; health says whether writes commit.

A locked database, a full disk or a failing one used to answer INTERNAL while health stayed SERVING. They are
not bugs: the caller may retry later (UNAVAILABLE) or an operator must free space (RESOURCE_EXHAUSTED). The
hub's servicer layer maps them here from the store's exceptions (SQLite's, or a PostgreSQL driver's), turns
health NOT_SERVING at the first one, and back to SERVING at the next write that commits. A stored record that
no longer decodes answers DATA_LOSS for the calls that read it, and leaves health alone (the store still
commits); the store sets such a row aside (store/quarantine.py), so only the calls naming its id see it.
`store_failure_note` words the same failures for a cycle's notes, so a local disk error is never reported
as another service's.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import sqlite3
from collections.abc import Awaitable, Callable

from google.protobuf.message import DecodeError

from services.common.errors import ContractError, DataLoss, ResourceExhausted, Unavailable
from services.hub.store import StoreUnavailable

log = logging.getLogger("caspian.hub")

# SQLite's result codes (sqlite3.Error.sqlite_errorname), with the message text as a fallback for errors
# raised without one.
_FULL = ("SQLITE_FULL", "database or disk is full")
_BUSY = ("SQLITE_BUSY", "SQLITE_LOCKED", "database is locked", "database table is locked")
_READONLY = ("SQLITE_READONLY", "readonly database")
_IO = ("SQLITE_IOERR", "disk i/o error")
_DAMAGED = (
    "SQLITE_CORRUPT",
    "SQLITE_NOTADB",
    "SQLITE_CANTOPEN",
    "malformed",
    "not a database",
    "unable to open",
)


def _is(kind: tuple[str, ...], name: str, text: str) -> bool:
    return any(name.startswith(word) if word.isupper() else word in text for word in kind)


def storage_error(exc: BaseException) -> ContractError | None:
    """The contract error for a store failure, or None for anything else (which stays INTERNAL)."""
    text = str(exc).lower()
    if isinstance(exc, DecodeError):
        # Request bodies are decoded before the servicer runs; a DecodeError here is a stored record.
        return DataLoss(
            "a stored record cannot be decoded: the hub's database is damaged (see the hub's log); "
            "other AppWrappers are unaffected"
        )
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return ResourceExhausted("the hub's disk is full; nothing was changed (free space, then retry)")
    if isinstance(exc, sqlite3.Error):
        name = getattr(exc, "sqlite_errorname", "") or ""
        if _is(_FULL, name, text):
            return ResourceExhausted(
                "the hub's database disk is full; nothing was changed (free space, then retry)"
            )
        if _is(_BUSY, name, text):
            return Unavailable("the hub's database is locked by another process; nothing was changed, retry")
        if _is(_READONLY, name, text):
            return Unavailable("the hub's database is read-only; nothing was changed")
        if _is(_IO, name, text):
            return Unavailable(
                "the hub's database disk failed a read or write (disk I/O error: a full or failing disk, or a "
                "file size limit); nothing was changed, retry once it is fixed"
            )
        if _is(_DAMAGED, name, text):
            return Unavailable(
                f"the hub's database file is damaged or missing ({text[:80]}); nothing was changed"
            )
        if isinstance(exc, sqlite3.OperationalError):
            return Unavailable(f"the hub's database refused the operation ({text[:80]}); retry")
        return None
    if type(exc).__module__.startswith("psycopg") and type(exc).__name__ in (
        "OperationalError",
        "PoolTimeout",
        "ConnectionTimeout",
    ):
        if "no space" in text or "disk full" in text:
            return ResourceExhausted("the hub's database disk is full; nothing was changed")
        return Unavailable("the hub's database is unreachable; retry")
    return None


def store_failure_note(exc: BaseException, doing: str = "") -> str | None:
    """A cycle note for a failure of the hub's own database ('hub database: ...'), or None for anything else.

    The scheduling cycle calls other services and the store in the same steps (a forecast is fetched, then
    cached); a note must name the part that failed: `note = store_failure_note(exc, "caching forecast KR")
    or f"carbon KR: {exc}"`."""
    mapped = exc if isinstance(exc, StoreUnavailable) else storage_error(exc)
    if mapped is None:
        return None
    what = f" while {doing}" if doing else ""
    return f"hub database{what}: {str(mapped)[:200]}"


class StorageHealth:
    """Maps store failures for the interceptor and keeps health NOT_SERVING while writes cannot commit."""

    def __init__(self, set_serving: Callable[[bool], Awaitable[None]]):
        self._set_serving = set_serving
        self.failing = False
        self._tasks: set[asyncio.Task] = set()

    def map(self, exc: BaseException) -> ContractError | None:
        mapped = storage_error(exc)
        if isinstance(mapped, DataLoss):
            log.error("a stored record cannot be decoded", exc_info=exc)
            return mapped  # one damaged record: the store still commits, health stays as it is
        if mapped is not None and not self.failing:
            self.failing = True
            log.error("store failing; health NOT_SERVING", extra={"error": str(exc)[:200]})
            self._spawn(self._set_serving(False))
        return mapped

    def committed(self) -> None:
        """A write committed: the store works again."""
        if self.failing:
            self.failing = False
            log.info("store writes commit again; health SERVING")
            self._spawn(self._set_serving(True))

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
