"""Which provider serves which zone: the CASPIAN_CARBON_ZONES map and data paths relative to the repo root.

A zone map is a comma-separated list of `ZONE=PROVIDER[:ARGUMENT]`:

- `KR=replay:data/carbon/electricitymaps/KR_2023_hourly.csv`: replay an Electricity Maps CSV export;
- `CN=synthetic` or `XX=synthetic:300-400`: seeded synthetic values in a range (gCO2/kWh);
- `DE=electricitymaps` or `DE-LU=electricitymaps:DE`: the Electricity Maps API, optionally under another
  zone key than ours.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

PROVIDERS = ("replay", "synthetic", "electricitymaps")
DEFAULT_ZONES = (
    "KR=replay:data/carbon/electricitymaps/KR_2023_hourly.csv,"
    "JP-TK=replay:data/carbon/electricitymaps/JP-TK_2023_hourly.csv,"
    "CN=synthetic"
)
# The seed's mock ranges, gCO2/kWh; a zone key matches the longest prefix listed.
SYNTHETIC_RANGES = {"KR": (300.0, 400.0), "JP": (350.0, 500.0), "CN": (500.0, 750.0)}

_ZONE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_RANGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*-\s*(\d+(?:\.\d+)?)\s*$")


@dataclass(frozen=True)
class ZoneSpec:
    zone: str
    provider: str
    argument: str = ""


def parse_zone_specs(text: str) -> tuple[ZoneSpec, ...]:
    """Parse a zone map; raises ValueError with a message fit for a settings error."""
    specs: list[ZoneSpec] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        zone, sep, rest = item.partition("=")
        zone = zone.strip()
        if not sep or not rest.strip():
            raise ValueError(f"expected ZONE=PROVIDER[:ARGUMENT], got {item!r}")
        if not _ZONE_KEY.match(zone):
            raise ValueError(f"bad zone key {zone!r}")
        provider, _, argument = rest.strip().partition(":")
        if provider not in PROVIDERS:
            raise ValueError(f"zone {zone}: provider must be one of {', '.join(PROVIDERS)}, got {provider!r}")
        if any(spec.zone == zone for spec in specs):
            raise ValueError(f"zone {zone} is listed twice")
        spec = ZoneSpec(zone, provider, argument.strip())
        if provider == "replay" and not spec.argument:
            raise ValueError(f"zone {zone}: replay needs a CSV path, e.g. {zone}=replay:path/to/trace.csv")
        if provider == "synthetic":
            synthetic_range(spec)
        specs.append(spec)
    if not specs:
        raise ValueError("no zones configured")
    return tuple(specs)


def synthetic_range(spec: ZoneSpec) -> tuple[float, float]:
    if spec.argument:
        match = _RANGE.match(spec.argument)
        if not match or float(match[1]) >= float(match[2]):
            raise ValueError(f"zone {spec.zone}: synthetic range must be LOW-HIGH, got {spec.argument!r}")
        return float(match[1]), float(match[2])
    for prefix in sorted(SYNTHETIC_RANGES, key=len, reverse=True):
        if spec.zone == prefix or spec.zone.startswith(prefix + "-"):
            return SYNTHETIC_RANGES[prefix]
    raise ValueError(f"zone {spec.zone}: no default synthetic range; write {spec.zone}=synthetic:LOW-HIGH")


def resolve_data_path(path: str | Path) -> Path:
    """An absolute path as is; a relative one against the repository root, else the working directory."""
    candidate = Path(path).expanduser()
    if candidate.is_absolute():
        return candidate
    in_repo = REPO_ROOT / candidate
    if in_repo.exists() or not candidate.exists():
        return in_repo
    return candidate.resolve()


def display_path(path: Path) -> str:
    """A path as users configure it: relative to the repo root when inside it."""
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)
