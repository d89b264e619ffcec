"""Write docs/configuration.md: every setting of every service, from the settings classes themselves.

Usage: python -m tools.config_reference [--check]   (--check exits 1 if the committed file is out of date)
"""

from __future__ import annotations

import dataclasses
import pathlib
import sys

from services.carbon.settings import PREFIX as CARBON_PREFIX
from services.carbon.settings import CarbonSettings
from services.common.clock import ClockSettings
from services.common.server import ServerSettings
from services.console.settings import PREFIX as CONSOLE_PREFIX
from services.console.settings import ConsoleSettings
from services.dispatcher.settings import PREFIX as DISPATCHER_PREFIX
from services.dispatcher.settings import DispatcherSettings
from services.hub.settings import PREFIX as HUB_PREFIX
from services.hub.settings import HubSettings
from services.launcher.__main__ import RUN_ENVIRONMENT
from services.optimizer.settings import PREFIX as OPTIMIZER_PREFIX
from services.optimizer.settings import OptimizerSettings

ROOT = pathlib.Path(__file__).resolve().parent.parent
TARGET = ROOT / "docs" / "configuration.md"
SERVICES = [
    ("hub", HubSettings, HUB_PREFIX),
    ("carbon", CarbonSettings, CARBON_PREFIX),
    ("optimizer", OptimizerSettings, OPTIMIZER_PREFIX),
    ("dispatcher", DispatcherSettings, DISPATCHER_PREFIX),
]
SHARED = {f.name for f in dataclasses.fields(ServerSettings)}


def _default(value: object) -> str:
    if isinstance(value, tuple):
        return ",".join(value) if value else "(empty)"
    if value is None or value == "":
        return "(empty)"
    return str(value).replace("|", "\\|")


def _rows(cls: type, prefix: str, names: set[str] | None = None) -> list[str]:
    rows = []
    for field in dataclasses.fields(cls):
        if names is not None and field.name not in names:
            continue
        help_text = field.metadata.get("help", "").replace("|", "\\|")
        rows.append(f"| `{prefix}{field.name.upper()}` | `{_default(field.default)}` | {help_text} |")
    return rows


def render() -> str:
    lines = [
        "# Configuration reference",
        "",
        "Generated from the settings classes by `python -m tools.config_reference`; a test fails when it is stale.",
        "Every service reads its settings from environment variables at start and stops with one line naming the",
        "variable when a value is bad.",
        "",
        "## Shared by every service",
        "",
        "Each service reads these with its own prefix (`CASPIAN_HUB_`, `CASPIAN_CARBON_`, `CASPIAN_OPTIMIZER_`,",
        "`CASPIAN_DISPATCHER_`); the default port differs per service (below).",
        "",
        "| variable | default | meaning |",
        "|---|---|---|",
        *_rows(ServerSettings, "CASPIAN_<SERVICE>_"),
        "",
        "## Clock (all processes)",
        "",
        "| variable | default | meaning |",
        "|---|---|---|",
        *_rows(ClockSettings, "CASPIAN_CLOCK_"),
    ]
    for name, cls, prefix in SERVICES:
        own = {f.name for f in dataclasses.fields(cls) if f.name not in SHARED or f.name == "port"}
        lines += [
            "",
            f"## {name}",
            "",
            "| variable | default | meaning |",
            "|---|---|---|",
            *_rows(cls, prefix, own),
        ]
    lines += [
        "",
        "## make run and make demo",
        "",
        "The launcher (`python -m services.launcher`, `--help` for its options) starts every process with the",
        "settings above, and sets some itself: gRPC ports 50050-50053 and metrics ports 9100-9103 (random ones",
        "with `--ephemeral-ports` and for the demo), the sim clock (`CASPIAN_CLOCK_*`, unless `--wall-clock`),",
        "the hub's database in the run directory, and a 15-minute cycle on a 24-hour horizon of 15-minute slots",
        "(`CASPIAN_HUB_SCHEDULE_PERIOD_SECONDS=900`, `..._SLOT_SECONDS=900`, `..._HORIZON_SLOTS=96`). Any other",
        "variable in its environment reaches the services as it is. It reads:",
        "",
        "| variable | default | meaning |",
        "|---|---|---|",
        *[f"| `{name}` | `{default}` | {text} |" for name, default, text in RUN_ENVIRONMENT],
        "",
        "## console",
        "",
        "The web console serves HTTP, not gRPC: it reads only these (none of the shared gRPC server settings).",
        "",
        "| variable | default | meaning |",
        "|---|---|---|",
        *_rows(ConsoleSettings, CONSOLE_PREFIX),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not TARGET.exists() or TARGET.read_text(encoding="utf-8") != text:
            print(
                f"{TARGET.relative_to(ROOT)} is stale: run `python -m tools.config_reference`",
                file=sys.stderr,
            )
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
