"""Kubernetes label and field selectors, as the API server parses them."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Predicate = Callable[[dict[str, Any]], bool]


class SelectorError(ValueError):
    pass


_SET = re.compile(r"^\s*(!?)([A-Za-z0-9._/-]+)\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")
_EQ = re.compile(r"^\s*([A-Za-z0-9._/-]+)\s*(==|=|!=)\s*([A-Za-z0-9._-]*)\s*$")


def _split_terms(text: str) -> list[str]:
    """Split on commas outside parentheses: `a in (x,y),b` -> [`a in (x,y)`, `b`]."""
    terms: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(char)
    terms.append("".join(current))
    return [t for t in (term.strip() for term in terms) if t]


# A label requirement: key, operator ("in", "notin", "exists", "!exists"; = and != are "in"/"notin" of one value),
# values.
Requirement = tuple[str, str, frozenset[str]]


def _label_matches(labels: dict[str, str], requirement: Requirement) -> bool:
    key, op, values = requirement
    if op == "exists":
        return key in labels
    if op == "!exists":
        return key not in labels
    if op == "in":
        return labels.get(key) in values
    return labels.get(key) not in values  # notin (and !=) also match an object without the label


def label_selector(text: str | None) -> Predicate:
    """`app=x,tier!=db,env in (a,b),!legacy,owner` -> predicate over an object's labels."""
    requirements: list[Requirement] = []
    for term in _split_terms(text or ""):
        eq = _EQ.match(term)
        if eq:
            key, op, value = eq.groups()
            requirements.append((key, "notin" if op == "!=" else "in", frozenset((value,))))
            continue
        match = _SET.match(term)
        if not match:
            raise SelectorError(f"unable to parse requirement: {term!r}")
        negate, key, op, values = match.groups()
        if op:
            if negate:
                raise SelectorError(f"unable to parse requirement: {term!r}")
            options = frozenset(v.strip() for v in values.split(",") if v.strip())
            requirements.append((key, op, options))
        else:
            requirements.append((key, "!exists" if negate else "exists", frozenset()))

    def matches(obj: dict[str, Any]) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(_label_matches(labels, requirement) for requirement in requirements)

    return matches


def _field(obj: dict[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)


def field_selector(text: str | None) -> Predicate:
    """`metadata.name=x,status.phase!=Failed` -> predicate; any dotted path of the object works."""
    checks: list[tuple[str, bool, str]] = []  # (path, equal, value)
    for term in _split_terms(text or ""):
        match = _EQ.match(term)
        if not match:
            raise SelectorError(f"invalid field selector: {term!r}")
        path, op, value = match.groups()
        checks.append((path, op != "!=", value))
    return lambda obj: all((_field(obj, path) == value) == equal for path, equal, value in checks)
