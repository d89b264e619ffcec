"""A real PostgreSQL server for the tests: one per session, in a temporary directory, stopped at the end.

PostgreSQL refuses to run as root, so when the tests run as root the server runs as the unprivileged
`nobody` (through `runuser`), in a directory it owns. It listens only on a unix socket in that directory (no
TCP port to collide with). Each test gets a database of its own (`postgres_url`), dropped afterwards.

When the binaries are missing the PostgreSQL tests are skipped, except under CI, where they fail:
`tools/install_tools.sh` installs the Debian `postgresql` package.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

UNPRIVILEGED_USER = "nobody"
SUPERUSER = "caspian"


def _bin_dir() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    preferred = [p for p in found if "/15/" in p]
    chosen = (preferred or found or [shutil.which("initdb") or ""])[-1]
    return os.path.dirname(chosen) if chosen else None


@dataclass
class PostgresServer:
    bin_dir: str
    root: str
    port: int = 5432
    # fsync and full-page writes on, as in production (benchmarks); the tests run without them.
    durable: bool = False

    @property
    def data_dir(self) -> str:
        return os.path.join(self.root, "data")

    @property
    def socket_dir(self) -> str:
        return self.root

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@/{database}?host={self.socket_dir}&port={self.port}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = list(args)
        if os.geteuid() == 0:
            command = ["runuser", "-u", UNPRIVILEGED_USER, "--", *command]
        return subprocess.run(command, check=check, capture_output=True, text=True, timeout=120)

    def init(self) -> None:
        self._run(
            f"{self.bin_dir}/initdb", "-D", self.data_dir, "-U", SUPERUSER, "-A", "trust", "--no-sync",
            "-E", "UTF8", "--locale", "C",
        )  # fmt: skip

    def start(self) -> None:
        # fsync=off: these tests crash the server process, never the machine, and the OS cache survives that.
        options = (
            f"-c listen_addresses='' -c unix_socket_directories='{self.socket_dir}' -c port={self.port} "
            "-c max_connections=200 -c shared_buffers=32MB"
        )
        if not self.durable:
            options += " -c fsync=off -c full_page_writes=off"
        self._run(
            f"{self.bin_dir}/pg_ctl", "-D", self.data_dir, "-o", options, "-l",
            os.path.join(self.root, "server.log"), "-w", "-t", "60", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run(
            f"{self.bin_dir}/pg_ctl", "-D", self.data_dir, "-m", mode, "-w", "-t", "60", "stop", check=False
        )

    def psql(self, sql: str, database: str = "postgres") -> str:
        result = self._run(
            f"{self.bin_dir}/psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1",
            "-h", self.socket_dir, "-p", str(self.port), "-U", SUPERUSER, "-d", database, "-c", sql,
        )  # fmt: skip
        return result.stdout.strip()


def _owned_temp_dir() -> str:
    root = tempfile.mkdtemp(prefix="caspian-pg-")
    if os.geteuid() == 0:
        user = pwd.getpwnam(UNPRIVILEGED_USER)
        os.chown(root, user.pw_uid, user.pw_gid)
    os.chmod(root, 0o700)
    return root


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """A server of its own in a temporary directory, stopped and removed after; missing PostgreSQL fails under CI
    (the project's set-up installs it) and skips elsewhere."""
    bin_dir = _bin_dir()
    if not bin_dir:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed: run tools/install_tools.sh")
        pytest.skip("PostgreSQL is not installed (tools/install_tools.sh installs it)")
    server = PostgresServer(bin_dir, _owned_temp_dir())
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server


_databases = itertools.count(1)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on the session's server."""
    name = f"test_{os.getpid()}_{next(_databases)}"
    postgres_server.psql(f"CREATE DATABASE {name}")
    yield postgres_server.url(name)
    postgres_server.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
