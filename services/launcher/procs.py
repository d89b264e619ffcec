"""Start CASPIAN processes and wait for their READY line; used by the launcher and by the tests."""

from __future__ import annotations

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

READY = re.compile(r"^READY service=(?P<service>\S+) grpc=(?P<grpc>\S+) metrics=(?P<metrics>\S+)")


class StartupFailed(RuntimeError):
    """A child exited before it was ready. str() is its last log lines; `summary` is one line for a user."""

    def __init__(self, module: str, returncode: int | None, log_lines: list[str], log_file: str = ""):
        super().__init__(f"{module} exited with {returncode}: " + "\n".join(log_lines[-20:]))
        self.module = module
        self.summary = f"{module} did not start: {last_error(log_lines)}" + (
            f" (log: {log_file})" if log_file else ""
        )


def last_error(log_lines: list[str]) -> str:
    """The message of the last JSON log line (or the last plain line): what a user needs from a failure."""
    for line in reversed(log_lines):
        try:
            record = json.loads(line)
        except ValueError:
            if line.strip() and not line.startswith((" ", "Traceback")):
                return line.strip()
            continue
        if isinstance(record, dict) and record.get("message"):
            return str(record["message"])
    return "no log output"


@dataclass
class ServiceProcess:
    """A child process running `python -m <module>`; its stderr (JSON logs) is kept in `log_lines`."""

    module: str
    env: Mapping[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    proc: subprocess.Popen | None = None
    address: str = ""
    metrics_address: str = ""
    log_lines: list[str] = field(default_factory=list)
    stdout_lines: list[str] = field(default_factory=list)
    echo_logs: bool = False
    # Append the child's stderr (its JSON log) to this file as well.
    log_file: pathlib.Path | None = None

    def start(self, timeout: float = 30.0) -> ServiceProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module, *self.args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        ready = threading.Event()
        log = None
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            log = open(self.log_file, "a", buffering=1)  # noqa: SIM115 - closed when the pipe ends

        def read_stdout() -> None:
            assert self.proc and self.proc.stdout
            for line in self.proc.stdout:
                self.stdout_lines.append(line.rstrip("\n"))
                match = READY.match(line)
                if match and not ready.is_set():
                    self.address = match["grpc"]
                    self.metrics_address = match["metrics"]
                    ready.set()

        def read_stderr() -> None:
            assert self.proc and self.proc.stderr
            try:
                for line in self.proc.stderr:
                    self.log_lines.append(line.rstrip("\n"))
                    if log is not None:
                        log.write(line)
                    if self.echo_logs:
                        sys.stderr.write(line)
            finally:
                if log is not None:
                    log.close()

        threading.Thread(target=read_stdout, daemon=True).start()
        threading.Thread(target=read_stderr, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not ready.wait(0.05):
            if self.proc.poll() is not None:
                time.sleep(0.1)  # let the reader threads drain the pipes
                raise StartupFailed(
                    self.module, self.proc.returncode, self.log_lines, str(self.log_file or "")
                )
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(f"{self.module} did not become ready in {timeout}s")
        return self

    @property
    def port(self) -> int:
        return int(self.address.rsplit(":", 1)[1])

    def terminate(self, timeout: float = 15.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
