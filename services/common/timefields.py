"""Every Timestamp and Duration in a request checked as protobuf defines them, before any servicer runs.

protobuf allows Timestamps from 0001-01-01 to 9999-12-31 with 0 <= nanos < 1e9, and Durations within
+-10,000 years whose seconds and nanos never differ in sign. A value outside those ranges decodes, but no
JSON formatter (grpcurl, json_format) can print it afterwards, so a stored one breaks every later read. The
shared interceptor calls `check_time_fields` on each request message of every service.

The walk is planned once per message type: only the fields whose subtree can hold a Timestamp or Duration are
visited, so a request without any costs a few attribute reads. Every request is first walked without building
a single field path (`_fine`); only one that holds a bad value is walked again to name it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias, cast

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

if TYPE_CHECKING:
    from google._upb._message import Descriptor as UpbDescriptor

from services.common.errors import InvalidArgument

TIMESTAMP = "google.protobuf.Timestamp"
DURATION = "google.protobuf.Duration"
MIN_TIMESTAMP_SECONDS = -62_135_596_800  # 0001-01-01T00:00:00Z
MAX_TIMESTAMP_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z
MAX_DURATION_SECONDS = 315_576_000_000  # 10,000 years
NANOS_PER_SECOND = 1_000_000_000

# A step of a plan: (field name, kind, nested plan); kind is "msg", "list" or "map", and the nested plan is
# a leaf (_TS or _DUR) or the plan of the nested message.
_Step = tuple[str, str, tuple]
_TS = ("ts",)
_DUR = ("dur",)
_PLANS: dict[str, tuple[_Step, ...]] = {}
# Message.DESCRIPTOR is typed as either implementation's: the pure-Python one or upb's (the one used at runtime).
_AnyDescriptor: TypeAlias = "Descriptor | UpbDescriptor"


def timestamp_problem(seconds: int, nanos: int) -> tuple[str, str] | None:
    """(sub-field, message) of what makes a Timestamp invalid, or None."""
    if not 0 <= nanos < NANOS_PER_SECOND:
        return "nanos", f"must be in [0, 999999999], got {nanos}"
    if not MIN_TIMESTAMP_SECONDS <= seconds <= MAX_TIMESTAMP_SECONDS:
        return "", "timestamp out of range (0001-01-01 to 9999-12-31)"
    return None


def duration_problem(seconds: int, nanos: int) -> tuple[str, str] | None:
    """(sub-field, message) of what makes a Duration invalid, or None."""
    if not -NANOS_PER_SECOND < nanos < NANOS_PER_SECOND:
        return "nanos", f"must be in [-999999999, 999999999], got {nanos}"
    if (seconds > 0 and nanos < 0) or (seconds < 0 and nanos > 0):
        return "nanos", f"seconds ({seconds}) and nanos ({nanos}) must have the same sign"
    if abs(seconds) > MAX_DURATION_SECONDS:
        return "", "duration out of range (at most 10,000 years either way)"
    return None


def _plan(descriptor: _AnyDescriptor, visiting: frozenset[str] = frozenset()) -> tuple[_Step, ...]:
    cached = _PLANS.get(descriptor.full_name)
    if cached is not None:
        return cached
    if descriptor.full_name in visiting:
        return ()  # caspian.v1 has no recursive messages; a recursion would end here
    visiting = visiting | {descriptor.full_name}
    steps: list[_Step] = []
    for field in descriptor.fields:
        if field.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        nested = field.message_type
        assert nested is not None  # set for every TYPE_MESSAGE field
        if nested.GetOptions().map_entry:
            value = nested.fields_by_name["value"]
            if value.type != FieldDescriptor.TYPE_MESSAGE:
                continue
            assert value.message_type is not None
            inner = _leaf_or_plan(value.message_type, visiting)
            if inner is not None:
                steps.append((field.name, "map", inner))
            continue
        inner = _leaf_or_plan(nested, visiting)
        if inner is None:
            continue
        repeated = field.is_repeated
        steps.append((field.name, "list" if repeated else "msg", inner))
    plan = tuple(steps)
    _PLANS[descriptor.full_name] = plan
    return plan


def _leaf_or_plan(descriptor: _AnyDescriptor, visiting: frozenset[str]):
    """("ts"|"dur",) for a time type, the nested plan for a message holding one, None for neither."""
    if descriptor.full_name == TIMESTAMP:
        return _TS
    if descriptor.full_name == DURATION:
        return _DUR
    plan = _plan(descriptor, visiting)
    return plan or None


def _fine_value(value, inner) -> bool:
    if inner is _TS:
        return timestamp_problem(value.seconds, value.nanos) is None
    if inner is _DUR:
        return duration_problem(value.seconds, value.nanos) is None
    return _fine(value, inner)


def _fine(message, plan: tuple[_Step, ...]) -> bool:
    """Whether every Timestamp and Duration under `message` is valid (no paths built: the common case)."""
    for name, kind, inner in plan:
        if kind == "msg":
            if message.HasField(name) and not _fine_value(getattr(message, name), inner):
                return False
        elif kind == "list":
            for value in getattr(message, name):
                if not _fine_value(value, inner):
                    return False
        else:
            entries = getattr(message, name)
            for key in entries:
                if not _fine_value(entries[key], inner):
                    return False
    return True


def _check_value(value: Message, inner, path: str) -> None:
    if inner is _TS:
        timestamp = cast(Timestamp, value)
        problem = timestamp_problem(timestamp.seconds, timestamp.nanos)
    elif inner is _DUR:
        duration = cast(Duration, value)
        problem = duration_problem(duration.seconds, duration.nanos)
    else:
        _walk(value, inner, path)
        return
    if problem is not None:
        sub, message = problem
        raise InvalidArgument(message, field=f"{path}.{sub}" if sub else path)


def _walk(message: Message, plan: tuple[_Step, ...], prefix: str) -> None:
    for name, kind, inner in plan:
        path = f"{prefix}.{name}" if prefix else name
        if kind == "msg":
            if message.HasField(name):
                _check_value(getattr(message, name), inner, path)
        elif kind == "list":
            for i, value in enumerate(getattr(message, name)):
                _check_value(value, inner, f"{path}[{i}]")
        else:
            entries = getattr(message, name)
            for key in entries:
                _check_value(entries[key], inner, f"{path}[{str(key)[:40]!r}]")


def check_time_fields(message: Message, prefix: str = "") -> None:
    """Raise InvalidArgument naming the first Timestamp or Duration in `message` that protobuf forbids."""
    descriptor = message.DESCRIPTOR
    if descriptor.full_name in (TIMESTAMP, DURATION):
        _check_value(message, _leaf_or_plan(descriptor, frozenset()), prefix or descriptor.name)
        return
    plan = _PLANS.get(descriptor.full_name)
    if plan is None:
        plan = _plan(descriptor)
    if plan and not _fine(message, plan):
        _walk(message, plan, prefix)
