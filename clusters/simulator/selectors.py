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
    terms, depth, current = [], 0, []
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


def label_selector(text: str | None) -> Predicate:
    """`app=x,tier!=db,env in (a,b),!legacy,owner` -> predicate over an object's labels."""
    checks: list[Callable[[dict[str, str]], bool]] = []
    for term in _split_terms(text or ""):
        eq = _EQ.match(term)
        if eq:
            key, op, value = eq.groups()
            if op == "!=":
                checks.append(lambda labels, k=key, v=value: labels.get(k) != v)
            else:
                checks.append(lambda labels, k=key, v=value: labels.get(k) == v)
            continue
        match = _SET.match(term)
        if not match:
            raise SelectorError(f"unable to parse requirement: {term!r}")
        negate, key, op, values = match.groups()
        if op:
            if negate:
                raise SelectorError(f"unable to parse requirement: {term!r}")
            options = {v.strip() for v in values.split(",") if v.strip()}
            if op == "in":
                checks.append(lambda labels, k=key, o=options: labels.get(k) in o)
            else:
                checks.append(lambda labels, k=key, o=options: labels.get(k) not in o)
        elif negate:
            checks.append(lambda labels, k=key: k not in labels)
        else:
            checks.append(lambda labels, k=key: k in labels)

    def matches(obj: dict[str, Any]) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(check(labels) for check in checks)

    return matches


def _field(obj: dict[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)


def field_selector(text: str | None) -> Predicate:
    """`metadata.name=x,status.phase!=Failed` -> predicate; any dotted path of the object works."""
    checks: list[Callable[[dict[str, Any]], bool]] = []
    for term in _split_terms(text or ""):
        match = _EQ.match(term)
        if not match:
            raise SelectorError(f"invalid field selector: {term!r}")
        path, op, value = match.groups()
        if op == "!=":
            checks.append(lambda obj, p=path, v=value: _field(obj, p) != v)
        else:
            checks.append(lambda obj, p=path, v=value: _field(obj, p) == v)
    return lambda obj: all(check(obj) for check in checks)
