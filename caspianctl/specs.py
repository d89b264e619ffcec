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
    interruptible: {resume_overhead: 5m, min_segment: 1h, max_pauses: 4}   # caspianctl/interruptible.py
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
from caspianctl.interruptible import interruptible_from
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
        "interruptible",
    }
)
CLUSTER_KEYS = frozenset({"name", "zone", "kube_context", "job_namespace", "capacity", "power", "labels"})
RESOURCE_KEYS = frozenset({"cpu", "memory", "gpus"})
POWER_KEYS = frozenset(f.name for f in common_pb2.PowerModel.DESCRIPTOR.fields)


# The job file's key for each AppWrapper field the hub may name in an error.
FILE_KEYS = {
    "template.expected_runtime": "runtime",
    "template.resources.cpu_millis": "cpu",
    "template.resources.memory_bytes": "memory",
    "template.resources.gpus": "gpus",
    "template.resources": "cpu, memory, gpus",
    "template.image": "image",
    "template.command": "command",
    "template.args": "args",
    "template.env": "env",
}


class SpecError(ValueError):
    """A job or cluster file that cannot be used; the message names the file, the line, the item and the key
    (one line per problem)."""


class _Mapping(dict):
    """A YAML mapping that remembers the line of each of its keys."""

    lines: dict


class _Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> _Mapping:
    loader.flatten_mapping(node)
    mapping = _Mapping(loader.construct_pairs(node, deep=True))
    mapping.lines = {loader.construct_object(k, deep=True): k.start_mark.line + 1 for k, _ in node.value}
    return mapping


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


@dataclass(frozen=True)
class Document:
    source: str
    index: int
    body: object

    def line_of(self, key: str | None) -> int | None:
        lines = getattr(self.body, "lines", {})
        if not key:
            return min(lines.values(), default=None)
        # A nested key ("interruptible.min_segment") has its own line when its mapping was read from YAML.
        head, _, rest = key.partition(".")
        inner = getattr(self.body.get(head) if isinstance(self.body, dict) else None, "lines", {})
        return inner.get(rest) or lines.get(head)

    def where(self, key: str | None = None) -> str:
        line = self.line_of(key)
        label = self.source + (f":{line}" if line else "")
        if self.index >= 0:
            label += f": item {self.index}"
        if isinstance(self.body, dict) and isinstance(self.body.get("name"), str):
            label += f" ({self.body['name']})"
        return f"{label}: {key}" if key else label


def _parse_text(text: str, source: str) -> list[object]:
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            return [json.loads(text)]
        except json.JSONDecodeError as exc:
            raise SpecError(f"{source}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from None
    try:
        return [doc for doc in yaml.load_all(text, Loader=_Loader) if doc is not None]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise SpecError(f"{where}: not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{source}: not valid YAML: {str(exc).splitlines()[0]}") from None


def file_key_for(message: str, doc: Document) -> str:
    """For a hub error naming an AppWrapper field ("app_wrapper.template.expected_runtime: ..."), the key
    the user wrote in the job file, with its line: "key runtime at job.yaml:4"; "" when there is none."""
    if not isinstance(doc.body, dict) or "template" in doc.body:
        return ""
    path = message.split(":", 1)[0].strip().removeprefix("app_wrapper.")
    if " " in path or not path:
        return ""
    key = FILE_KEYS.get(path, path.split(".")[0] if not path.startswith("template") else "")
    if not key:
        return ""
    line = doc.line_of(key)
    return f"key {key} at {doc.source}" + (f":{line}" if line else "")


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


def _mapping(doc: Document, allowed: frozenset[str], problems: list[str]) -> dict:
    if not isinstance(doc.body, dict):
        raise SpecError(f"{doc.where()}: expected a mapping, got {type(doc.body).__name__}")
    for key in sorted((k for k in doc.body if k not in allowed), key=str):
        problems.append(f"{doc.where(str(key))}: unknown key; known: {', '.join(sorted(allowed))}")
    return doc.body


class _Problems:
    """Collects every problem of one document, so that the user sees them all at once."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def check(self, convert, *args):
        try:
            return convert(*args)
        except SpecError as exc:
            self.found.append(str(exc))
            return None

    def raise_any(self) -> None:
        if self.found:
            raise SpecError("\n".join(self.found))


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
    resources, problems = common_pb2.Resources(), _Problems()
    if "cpu" in body:
        resources.cpu_millis = (
            problems.check(_quantity, doc, prefix + "cpu", parse_cpu_millis, body["cpu"]) or 0
        )
    if "memory" in body:
        memory = problems.check(_quantity, doc, prefix + "memory", parse_memory_bytes, body["memory"])
        resources.memory_bytes = memory or 0
    if "gpus" in body:
        resources.gpus = problems.check(_int, doc, prefix + "gpus", body["gpus"]) or 0
    problems.raise_any()
    return resources


def appwrapper_from_document(doc: Document, now: datetime) -> common_pb2.AppWrapper:
    """Map one document onto an AppWrapper; relative times ("6h") count from `now`. Every bad key of the
    document is reported, one line each."""
    if isinstance(doc.body, dict) and "template" in doc.body:
        try:
            return json_format.ParseDict(doc.body, common_pb2.AppWrapper())
        except json_format.ParseError as exc:
            raise SpecError(f"{doc.where()}: {' '.join(str(exc).split())}") from None
    problems = _Problems()
    body = _mapping(doc, APPWRAPPER_KEYS, problems.found)
    aw = common_pb2.AppWrapper()
    template = aw.template

    def put(key: str, convert, apply) -> None:
        if key in body:
            value = problems.check(convert, doc, key, body[key])
            if value is not None:
                apply(value)

    for key in ("id", "name", "tenant", "namespace"):
        put(key, _string, lambda v, key=key: setattr(aw, key, v))
    put("image", _string, lambda v: setattr(template, "image", v))
    put("command", _command, template.command.extend)
    put("args", _command, template.args.extend)
    put("env", lambda d, k, v: _env(d, v), template.env.extend)
    resources = problems.check(_resources, doc, body)
    if resources is not None:
        template.resources.CopyFrom(resources)
    put(
        "runtime",
        lambda d, k, v: _quantity(d, k, parse_positive_duration, v),
        lambda v: template.expected_runtime.CopyFrom(to_duration(v)),
    )
    for key in ("earliest_start", "deadline"):
        put(
            key,
            lambda d, k, v: _quantity(d, k, lambda x: parse_when(x, now), v),
            lambda v, key=key: getattr(aw, key).CopyFrom(to_timestamp(v)),
        )
    for key in ("required_clusters", "preferred_clusters", "excluded_clusters"):
        put(key, _strings, getattr(aw, key).extend)
    put("priority", lambda d, k, v: _int(d, k, v, minimum=-(2**31)), lambda v: setattr(aw, "priority", v))
    put("labels", _string_map, aw.labels.update)
    if "interruptible" in body:
        rule = interruptible_from(body["interruptible"], doc.where, problems.found)
        if rule is not None:
            aw.interruptible.CopyFrom(rule)
    problems.raise_any()
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
    problems = _Problems()
    body = _mapping(doc, CLUSTER_KEYS, problems.found)
    problems.raise_any()
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
