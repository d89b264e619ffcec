"""The run directory of `make run` (var/run) or `make demo` (var/demo): one running stack at a time holds it.

It holds the hub's database, the spokes' state files, the kubeconfig, the services' logs and the simulated
clock's last reading, so that the next start resumes where this one stopped. A stack holds an exclusive
`flock` on `run.lock` for as long as it runs; a second start on the same directory is refused before it
writes anything.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pathlib
import socket
import sqlite3
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime

LOCK_FILE = "run.lock"
CLOCK_FILE = "clock.json"
HUB_DB = "hub.db"
LOG_DIR = "logs"


class StartRefused(Exception):
    """Start-up stopped before anything was written; the message is one line for the user."""


class RunDirectory:
    def __init__(self, path: pathlib.Path):
        self.path = path
        self._lock_fd: int | None = None

    # -- the lock ------------------------------------------------------------------------------------------
    def lock(self) -> None:
        """Take the directory for this process, or raise StartRefused naming the process that holds it."""
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise StartRefused(
                f"{self.path} is in use by a running CASPIAN (pid {holder}): stop it, or start another "
                "with --workdir DIR --ephemeral-ports"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the only descriptor releases the flock
            self._lock_fd = None

    # -- state of the previous run -------------------------------------------------------------------------
    @property
    def hub_db(self) -> pathlib.Path:
        return self.path / HUB_DB

    @property
    def log_dir(self) -> pathlib.Path:
        return self.path / LOG_DIR

    def has_state(self) -> bool:
        return self.hub_db.exists()

    def clear_state(self) -> None:
        """Forget the previous run: the database, the spokes' objects, the clock (logs are kept)."""
        for pattern in (f"{HUB_DB}*", "spoke-*.json", CLOCK_FILE):
            for stale in self.path.glob(pattern):
                stale.unlink()

    @contextlib.contextmanager
    def undo_on_failure(self) -> Iterator[None]:
        """Around start-up: when it fails, leave the directory as it was found. A fresh run's database, spoke
        state and kubeconfig are removed; a kept run's kubeconfig is put back (its database stays)."""
        kubeconfig = self.path / "kubeconfig"
        before = kubeconfig.read_bytes() if kubeconfig.exists() else None
        fresh = not self.has_state()
        try:
            yield
        except BaseException:
            if fresh:
                self.clear_state()
            if before is None:
                kubeconfig.unlink(missing_ok=True)
            else:
                kubeconfig.write_bytes(before)
            raise

    def last_time(self) -> datetime | None:
        """Where the previous run's simulated clock stopped: the later of the saved reading and the hub's
        last change, so that a run killed before it saved its clock never goes back behind its own data."""
        times = []
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            saved = json.loads((self.path / CLOCK_FILE).read_text())["sim_now"]
            times.append(datetime.fromisoformat(saved).astimezone(UTC))
        latest = _latest_change(self.hub_db)
        if latest is not None:
            times.append(latest)
        return max(times) if times else None

    def save_clock(self, now: datetime) -> None:
        target = self.path / CLOCK_FILE
        staging = target.with_suffix(".tmp")
        staging.write_text(json.dumps({"sim_now": now.astimezone(UTC).isoformat()}) + "\n")
        staging.replace(target)


def _latest_change(db: pathlib.Path) -> datetime | None:
    if not db.exists():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2)) as conn:
            row = conn.execute("SELECT max(updated) FROM appwrappers").fetchone()
    except sqlite3.Error:
        return None
    if not row or not row[0]:
        return None
    return datetime.fromtimestamp(row[0], UTC)


def busy_ports(ports: Mapping[str, int], host: str = "127.0.0.1") -> list[str]:
    """'name port' for every port another process listens on (checked before anything is started)."""
    busy = []
    for name, port in ports.items():
        with socket.socket() as sock:
            # SO_REUSEADDR: a just-stopped stack's TIME_WAIT connections do not count, a listener does.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                busy.append(f"{name} {port}")
    return busy
