"""Job and cluster files: YAML or JSON documents mapped onto caspian.v1 AppWrapper and ClusterInfo.

A file holds one document, several YAML documents (`---`), a list, or a mapping with `items:` (or
`clusters:`). Each AppWrapper document is either the friendly shape below or, when it has a `template`
key, the protobuf JSON form of `caspian.v1.AppWrapper`.

    name: train-resnet           tenant: vision        namespace: batch
    image: python:3.11-slim      command: ["python", "-c", "print(1)"]
    cpu: 500m   memory: 1Gi   gpus: 0   runtime: 30m
    deadline: 6h                 # or RFC 3339; offsets count from the hub's clock
    earliest_start: now
    required_clusters: [carbon-kr]   preferred_clusters: [carbon-jp]
    labels: {team: vision}
"""

from __future__ import annotations

import json
import pathlib
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

import yaml
from google.protobuf import json_format

from caspian.v1 import common_pb2
from caspianctl.quantities import (
    QuantityError,
    is_absolute_time,
    parse_cpu_millis,
    parse_memory_bytes,
    parse_positive_duration,
    parse_when,
)
from services.common.timeconv import to_duration, to_timestamp

APPWRAPPER_KEYS = frozenset(
    {
        "id",
        "name",
        "tenant",
        "namespace",
        "image",
        "command",
        "args",
        "env",
        "cpu",
        "memory",
        "gpus",
        "runtime",
        "deadline",
        "earliest_start",
        "required_clusters",
        "preferred_clusters",
        "excluded_clusters",
        "priority",
        "labels",
    }
)
CLUSTER_KEYS = frozenset({"name", "zone", "kube_context", "job_namespace", "capacity", "power", "labels"})
RESOURCE_KEYS = frozenset({"cpu", "memory", "gpus"})
POWER_KEYS = frozenset(f.name for f in common_pb2.PowerModel.DESCRIPTOR.fields)


class SpecError(ValueError):
    """A job or cluster file that cannot be used; the message names the file, the item and the key."""


@dataclass(frozen=True)
class Document:
    source: str
    index: int
    body: object

    def where(self, key: str | None = None) -> str:
        label = self.source if self.index < 0 else f"{self.source}: item {self.index}"
        if isinstance(self.body, dict) and isinstance(self.body.get("name"), str):
            label += f" ({self.body['name']})"
        return f"{label}: {key}" if key else label


def _parse_text(text: str, source: str) -> list[object]:
    stripped = text.lstrip()
    try:
        if stripped.startswith(("{", "[")):
            return [json.loads(text)]
        return [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise SpecError(f"{source}: not valid YAML or JSON: {str(exc).splitlines()[0]}") from None


def load_documents(path: str, list_keys: Iterable[str] = ("items",)) -> list[Document]:
    """Every document in a file ("-" reads standard input), flattened from lists and `items:` mappings."""
    if path == "-":
        import sys

        text, source = sys.stdin.read(), "<stdin>"
    else:
        file = pathlib.Path(path)
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise SpecError(f"{path}: {exc.strerror or exc}") from None
        source = path
    bodies: list[object] = []
    for doc in _parse_text(text, source):
        if isinstance(doc, dict):
            key = next((k for k in list_keys if k in doc and len(doc) == 1), None)
            if key is not None:
                doc = doc[key]
        if isinstance(doc, list):
            bodies.extend(doc)
        else:
            bodies.append(doc)
    if not bodies:
        raise SpecError(f"{source}: no documents")
    single = len(bodies) == 1
    return [Document(source, -1 if single else i, body) for i, body in enumerate(bodies)]


def _mapping(doc: Document, allowed: frozenset[str]) -> dict:
    if not isinstance(doc.body, dict):
        raise SpecError(f"{doc.where()}: expected a mapping, got {type(doc.body).__name__}")
    unknown = sorted(str(k) for k in doc.body if k not in allowed)
    if unknown:
        raise SpecError(
            f"{doc.where()}: unknown key {', '.join(unknown)}; known: {', '.join(sorted(allowed))}"
        )
    return doc.body


def _string(doc: Document, key: str, value: object) -> str:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise SpecError(f"{doc.where(key)}: expected a string, got {value!r}")
    return str(value)


def _strings(doc: Document, key: str, value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str | int | float) for v in value):
        raise SpecError(f"{doc.where(key)}: expected a list of strings, got {value!r}")
    return [str(v) for v in value]


def _string_map(doc: Document, key: str, value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise SpecError(f"{doc.where(key)}: expected a mapping of strings, got {value!r}")
    return {str(k): str(v) for k, v in value.items()}


def _int(doc: Document, key: str, value: object, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise SpecError(f"{doc.where(key)}: expected a whole number, got {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise SpecError(f"{doc.where(key)}: expected a whole number, got {value!r}") from None
    if number < minimum:
        raise SpecError(f"{doc.where(key)}: must be at least {minimum}, got {number}")
    return number


def _quantity(doc: Document, key: str, parse, value: object):
    try:
        return parse(value)
    except QuantityError as exc:
        raise SpecError(f"{doc.where(key)}: {exc}") from None


def _command(doc: Document, key: str, value: object) -> list[str]:
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            raise SpecError(f"{doc.where(key)}: {exc}") from None
    return _strings(doc, key, value)


def _env(doc: Document, value: object) -> list[common_pb2.EnvVar]:
    if isinstance(value, dict):
        return [common_pb2.EnvVar(name=str(k), value=str(v)) for k, v in value.items()]
    if isinstance(value, list) and all(isinstance(v, dict) and "name" in v for v in value):
        return [common_pb2.EnvVar(name=str(v["name"]), value=str(v.get("value", ""))) for v in value]
    raise SpecError(f"{doc.where('env')}: expected a mapping NAME: value or a list of {{name, value}}")


def _resources(doc: Document, body: dict, prefix: str = "") -> common_pb2.Resources:
    resources = common_pb2.Resources()
    if "cpu" in body:
        resources.cpu_millis = _quantity(doc, prefix + "cpu", parse_cpu_millis, body["cpu"])
    if "memory" in body:
        resources.memory_bytes = _quantity(doc, prefix + "memory", parse_memory_bytes, body["memory"])
    if "gpus" in body:
        resources.gpus = _int(doc, prefix + "gpus", body["gpus"])
    return resources


def appwrapper_from_document(doc: Document, now: datetime) -> common_pb2.AppWrapper:
    """Map one document onto an AppWrapper; relative times ("6h") count from `now`."""
    if isinstance(doc.body, dict) and "template" in doc.body:
        try:
            return json_format.ParseDict(doc.body, common_pb2.AppWrapper())
        except json_format.ParseError as exc:
            raise SpecError(f"{doc.where()}: {' '.join(str(exc).split())}") from None
    body = _mapping(doc, APPWRAPPER_KEYS)
    aw = common_pb2.AppWrapper()
    for key in ("id", "name", "tenant", "namespace"):
        if key in body:
            setattr(aw, key, _string(doc, key, body[key]))
    template = aw.template
    if "image" in body:
        template.image = _string(doc, "image", body["image"])
    if "command" in body:
        template.command.extend(_command(doc, "command", body["command"]))
    if "args" in body:
        template.args.extend(_command(doc, "args", body["args"]))
    if "env" in body:
        template.env.extend(_env(doc, body["env"]))
    template.resources.CopyFrom(_resources(doc, body))
    if "runtime" in body:
        runtime = _quantity(doc, "runtime", parse_positive_duration, body["runtime"])
        template.expected_runtime.CopyFrom(to_duration(runtime))
    for key in ("earliest_start", "deadline"):
        if key in body:
            when = _quantity(doc, key, lambda v: parse_when(v, now), body[key])
            getattr(aw, key).CopyFrom(to_timestamp(when))
    for key in ("required_clusters", "preferred_clusters", "excluded_clusters"):
        if key in body:
            getattr(aw, key).extend(_strings(doc, key, body[key]))
    if "priority" in body:
        aw.priority = _int(doc, "priority", body["priority"], minimum=-(2**31))
    if "labels" in body:
        aw.labels.update(_string_map(doc, "labels", body["labels"]))
    return aw


def needs_now(docs: Iterable[Document]) -> bool:
    """True when any document has a time that is not absolute, so the hub's clock must be read."""
    for doc in docs:
        if not isinstance(doc.body, dict) or "template" in doc.body:
            continue
        for key in ("earliest_start", "deadline"):
            value = doc.body.get(key)
            if value is None or isinstance(value, date):
                continue
            if not (isinstance(value, str) and is_absolute_time(value.strip())):
                return True
    return False


def cluster_from_document(doc: Document) -> common_pb2.ClusterInfo:
    """Map one document onto a ClusterInfo; `kube_context` defaults to the cluster name."""
    body = _mapping(doc, CLUSTER_KEYS)
    cluster = common_pb2.ClusterInfo()
    for key in ("name", "zone", "kube_context", "job_namespace"):
        if key in body:
            setattr(cluster, key, _string(doc, key, body[key]))
    if not cluster.name:
        raise SpecError(f"{doc.where('name')}: required")
    if not cluster.kube_context:
        cluster.kube_context = cluster.name
    if "capacity" in body:
        capacity = body["capacity"]
        if not isinstance(capacity, dict) or set(capacity) - RESOURCE_KEYS:
            raise SpecError(f"{doc.where('capacity')}: expected a mapping of cpu, memory, gpus")
        cluster.capacity.CopyFrom(_resources(doc, capacity, "capacity."))
    if "power" in body:
        power = body["power"]
        if not isinstance(power, dict) or set(power) - POWER_KEYS:
            raise SpecError(f"{doc.where('power')}: expected a mapping of {', '.join(sorted(POWER_KEYS))}")
        for key, value in power.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise SpecError(f"{doc.where('power.' + key)}: expected a number, got {value!r}")
            setattr(cluster.power, key, float(value))
    if "labels" in body:
        cluster.labels.update(_string_map(doc, "labels", body["labels"]))
    return cluster
