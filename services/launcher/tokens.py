"""Hub bearer tokens under `make run`: the admin token the launcher presents when it registers the spokes.

With `--auth` the launcher makes a token table in the run directory (an admin and a `demo` tenant, 0600) and
turns the hub's tokens on with it. With CASPIAN_HUB_AUTH_TOKENS_FILE already set, it takes the admin token
from CASPIAN_RUN_ADMIN_TOKEN_FILE, or else the first admin entry of that table.
"""

from __future__ import annotations

import os
import pathlib
import secrets
from dataclasses import dataclass

import yaml

from services.launcher.rundir import StartRefused

TOKENS_FILE = "hub-tokens.yaml"
ADMIN_TOKEN_FILE = "admin-token"
DEMO_TOKEN_FILE = "demo-token"


@dataclass(frozen=True)
class HubAuth:
    tokens_file: str
    admin_token: str
    # Files a user passes to `caspianctl --token-file`, when the launcher made them.
    admin_token_file: str = ""
    demo_token_file: str = ""


def _write_private(path: pathlib.Path, text: str) -> None:
    staging = path.with_name(path.name + ".tmp")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w") as fh:
        fh.write(text)
    staging.replace(path)


def make_tokens(workdir: pathlib.Path) -> HubAuth:
    """Tokens for this run directory, made once and reused by the next start."""
    table = workdir / TOKENS_FILE
    admin_file, demo_file = workdir / ADMIN_TOKEN_FILE, workdir / DEMO_TOKEN_FILE
    if not (table.exists() and admin_file.exists() and demo_file.exists()):
        admin, demo = "adm-" + secrets.token_hex(16), "demo-" + secrets.token_hex(16)
        _write_private(admin_file, admin + "\n")
        _write_private(demo_file, demo + "\n")
        _write_private(
            table,
            yaml.safe_dump(
                [
                    {"token": admin, "tenant": "ops", "roles": ["admin"]},
                    {"token": demo, "tenant": "demo"},
                ]
            ),
        )
    return HubAuth(str(table), admin_file.read_text().strip(), str(admin_file), str(demo_file))


def admin_token_from(tokens_file: str, admin_token_file: str = "") -> HubAuth:
    """The admin token for a token table the user gave; StartRefused (one line) when there is none."""
    if admin_token_file:
        try:
            token = pathlib.Path(admin_token_file).read_text().strip()
        except OSError as exc:
            raise StartRefused(
                f"cannot read the admin token file {admin_token_file}: {exc.strerror}"
            ) from None
        return HubAuth(tokens_file, token, admin_token_file)
    try:
        entries = yaml.safe_load(pathlib.Path(tokens_file).read_text()) or []
    except (OSError, yaml.YAMLError) as exc:
        raise StartRefused(f"cannot read CASPIAN_HUB_AUTH_TOKENS_FILE {tokens_file}: {exc}") from None
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and "admin" in (entry.get("roles") or []) and entry.get("token"):
            return HubAuth(tokens_file, str(entry["token"]))
    raise StartRefused(
        f"hub tokens are on ({tokens_file}) but it has no admin entry to register the spokes with: add one, "
        "or set CASPIAN_RUN_ADMIN_TOKEN_FILE"
    )
