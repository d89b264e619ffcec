"""Start CASPIAN processes and wait for their READY line; used by the launcher and by the tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

READY = re.compile(r"^READY service=(?P<service>\S+) grpc=(?P<grpc>\S+) metrics=(?P<metrics>\S+)")


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
            for line in self.proc.stderr:
                self.log_lines.append(line.rstrip("\n"))
                if self.echo_logs:
                    sys.stderr.write(line)

        threading.Thread(target=read_stdout, daemon=True).start()
        threading.Thread(target=read_stderr, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not ready.wait(0.05):
            if self.proc.poll() is not None:
                time.sleep(0.1)  # let the reader threads drain the pipes
                raise RuntimeError(
                    f"{self.module} exited with {self.proc.returncode}: " + "\n".join(self.log_lines[-20:])
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
