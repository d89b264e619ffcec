"""Another process holding a write lock on a SQLite file, as a test needs it for "the database is locked"."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator

# Holds a write lock on the file until its stdin closes.
HOLD_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
"""


@contextlib.contextmanager
def lock_held(path: str) -> Iterator[None]:
    """Another process holds a write lock on the SQLite file for the duration."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        yield
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=10)
