"""Pasted or uploaded job YAML, read the way `caspianctl submit` reads a file, with the line of every error.

The mapping onto AppWrappers is caspianctl's own (`appwrapper_from_document`), so the console and the CLI accept
and refuse the same documents with the same messages; this module adds where in the text each one points.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import yaml

from caspian.v1 import common_pb2
from caspianctl.specs import Document, SpecError, appwrapper_from_document, needs_now

SOURCE = "pasted"
MAX_BYTES = 1 << 20


@dataclass(frozen=True)
class PastedError:
    message: str
    # 1-based line in the pasted text; 0 when the error is about the whole text.
    line: int = 0
    field: str = ""


class PastedSpecError(ValueError):
    def __init__(self, error: PastedError):
        super().__init__(error.message)
        self.error = error


@dataclass(frozen=True)
class Item:
    document: Document
    # 1-based line of the item and of each of its top-level keys.
    line: int
    key_lines: dict[str, int]


def _flatten(node: yaml.Node) -> list[yaml.Node]:
    """The items of one YAML document: a list, `items:` holding a list, or the document itself."""
    if isinstance(node, yaml.MappingNode) and len(node.value) == 1:
        key, value = node.value[0]
        if isinstance(key, yaml.ScalarNode) and key.value == "items":
            node = value
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return [node]


def read_items(text: str) -> list[Item]:
    if len(text.encode()) > MAX_BYTES:
        raise PastedSpecError(PastedError(f"{SOURCE}: larger than {MAX_BYTES} bytes"))
    try:
        roots = [node for node in yaml.compose_all(text, Loader=yaml.SafeLoader) if node is not None]
        bodies: list[object] = []
        for doc in yaml.safe_load_all(text):
            if doc is None:
                continue
            if isinstance(doc, dict) and len(doc) == 1 and "items" in doc:
                doc = doc["items"]
            bodies.extend(doc if isinstance(doc, list) else [doc])
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        line = mark.line + 1 if mark is not None else 0
        raise PastedSpecError(
            PastedError(f"{SOURCE}: not valid YAML or JSON: {problem} (line {line})", line)
        ) from None
    nodes = [item for root in roots for item in _flatten(root)]
    if not bodies:
        raise PastedSpecError(PastedError(f"{SOURCE}: no documents"))
    single = len(bodies) == 1
    items = []
    for i, (body, node) in enumerate(zip(bodies, nodes, strict=True)):
        key_lines = {}
        if isinstance(node, yaml.MappingNode):
            for key, _ in node.value:
                if isinstance(key, yaml.ScalarNode):
                    key_lines[str(key.value)] = key.start_mark.line + 1
        document = Document(SOURCE, -1 if single else i, body)
        items.append(Item(document, node.start_mark.line + 1, key_lines))
    return items


def locate(items: list[Item], exc: SpecError) -> PastedError:
    """The line and field a caspianctl spec error names, found by the prefix `Document.where` gives it."""
    message = str(exc)
    for item in items:
        for key, line in item.key_lines.items():
            if message.startswith(item.document.where(key) + ":"):
                return PastedError(message, line, key)
    for item in items:
        if message.startswith(item.document.where() + ":"):
            return PastedError(message, item.line)
    return PastedError(message)


def app_wrappers(items: list[Item], now: datetime) -> list[common_pb2.AppWrapper]:
    result = []
    for item in items:
        try:
            result.append(appwrapper_from_document(item.document, now))
        except SpecError as exc:
            raise PastedSpecError(locate(items, exc)) from None
    return result


def relative_times(items: list[Item]) -> bool:
    return needs_now(item.document for item in items)
