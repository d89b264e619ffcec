"""A make-run-style stack (the launcher's Stack, console included) on ephemeral ports, with bearer tokens on the
hub: one admin and two tenants."""

from __future__ import annotations

import pathlib

import yaml

from services.launcher.__main__ import _scheduler_env
from services.launcher.stack import Stack, StackConfig

TOKENS = {"admin": "admin-secret-token", "team-a": "team-a-secret-token", "team-b": "team-b-secret-token"}


def write_tokens(workdir: pathlib.Path) -> pathlib.Path:
    entries = [{"token": TOKENS["admin"], "tenant": "ops", "roles": ["admin"]}]
    entries += [{"token": TOKENS[t], "tenant": t} for t in ("team-a", "team-b")]
    path = workdir / "tokens.yaml"
    path.write_text(yaml.safe_dump(entries), encoding="utf-8")
    return path


def start_stack(workdir: pathlib.Path, speedup: float = 720.0) -> Stack:
    workdir.mkdir(parents=True, exist_ok=True)
    tokens = write_tokens(workdir)
    env = _scheduler_env(speedup)
    env["hub"] = {**env["hub"], "CASPIAN_HUB_AUTH_TOKENS_FILE": str(tokens)}
    config = StackConfig(
        workdir=workdir, clock_speedup=speedup, env=env, hub_token=TOKENS["admin"], console=True
    )
    return Stack(config).start()
