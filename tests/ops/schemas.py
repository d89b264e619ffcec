"""The JSON schemas copied into deploy/schemas (see deploy/schemas/SOURCES.md), as validators."""

from __future__ import annotations

import functools
import json
import pathlib

import jsonschema

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "deploy" / "schemas"


@functools.cache
def validator(name: str) -> jsonschema.protocols.Validator:
    """A validator for deploy/schemas/<name>; the draft is the one the schema declares (draft 7 when vague)."""
    schema = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    declared = schema.get("$schema", "")
    if "draft-04" in declared:
        cls = jsonschema.Draft4Validator
    else:
        cls = jsonschema.Draft7Validator
    cls.check_schema(schema)
    return cls(schema)


def errors(name: str, document: object) -> list[str]:
    """Every validation error as `path: message`, empty when the document is valid."""
    found = sorted(validator(name).iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:300]}" for e in found]


def k8s_schema_name(document: dict) -> str:
    """The yannh/kubernetes-json-schema file name for a manifest: deployment-apps-v1.json, service-v1.json."""
    group, _, version = document["apiVersion"].rpartition("/")
    kind = document["kind"].lower()
    group = group.split(".")[0]
    return f"k8s/{kind}-{group}-{version}.json" if group else f"k8s/{kind}-{version}.json"
