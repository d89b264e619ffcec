"""Label selectors as kubectl writes them for `-l`: `key=value`, `key==value`, `key!=value`, `key`, `!key`,
comma-separated (all must hold), and the set forms `key in (a,b)` and `key notin (a,b)`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_SET = re.compile(r"^\s*([^\s!=,()]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQUALITY = re.compile(r"^\s*([^\s!=,()]+)\s*(==|=|!=)\s*([^\s!=,()]*)\s*$")
_EXISTS = re.compile(r"^\s*(!?)\s*([^\s!=,()]+)\s*$")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "in", "notin", "exists", "!exists"
    values: frozenset[str] = frozenset()

    def holds(self, labels: Mapping[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "!exists":
            return self.key not in labels
        if self.op == "in":
            return labels.get(self.key) in self.values
        return labels.get(self.key) not in self.values


def _split(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


def parse_selector(text: str) -> tuple[Requirement, ...]:
    requirements = []
    for part in _split(text):
        if match := _SET.match(part):
            values = frozenset(v.strip() for v in match[3].split(",") if v.strip())
            requirements.append(Requirement(match[1], match[2], values))
        elif match := _EQUALITY.match(part):
            op = "notin" if match[2] == "!=" else "in"
            requirements.append(Requirement(match[1], op, frozenset({match[3]})))
        elif match := _EXISTS.match(part):
            requirements.append(Requirement(match[2], "!exists" if match[1] else "exists"))
        else:
            raise ValueError(f"bad label selector {part.strip()!r}: use key=value, key!=value, key or !key")
    return tuple(requirements)


def matches(selector: tuple[Requirement, ...] | None, labels: Mapping[str, str]) -> bool:
    return all(r.holds(labels) for r in selector or ())
