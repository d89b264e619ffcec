"""Wire and JSON compatibility of the caspian.v1 contracts against a committed snapshot (buf's WIRE_JSON rules).

The snapshot, tests/ops/data/caspian_v1_api.json, records every message field (number, name, type, repeated),
enum value and RPC of caspian.v1. Adding is always allowed; removing, renumbering, renaming or retyping is
a breaking change and belongs in caspian.v2. After an additive change, refresh the snapshot:

    .venv/bin/python -m tests.ops.proto_compat --update
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

from caspian.v1 import carbon_pb2, common_pb2, dispatcher_pb2, hub_pb2, optimizer_pb2

SNAPSHOT = pathlib.Path(__file__).resolve().parent / "data" / "caspian_v1_api.json"
FILES = (common_pb2, carbon_pb2, optimizer_pb2, hub_pb2, dispatcher_pb2)


def _messages(descriptors):
    for message in descriptors:
        yield message
        yield from _messages(message.nested_types)


def _enums(file):
    yield from file.enum_types_by_name.values()
    for message in _messages(file.message_types_by_name.values()):
        yield from message.enum_types


def describe(files=FILES) -> dict:
    """The compatibility-relevant shape of the contracts, as plain JSON-able data."""
    messages, enums, services = {}, {}, {}
    for module in files:
        file = module.DESCRIPTOR
        for message in _messages(file.message_types_by_name.values()):
            messages[message.full_name] = {
                str(field.number): {
                    "name": field.name,
                    "type": field.type,
                    "type_name": (field.message_type or field.enum_type).full_name
                    if (field.message_type or field.enum_type)
                    else "",
                    "repeated": field.is_repeated,
                }
                for field in message.fields
            }
        for enum in _enums(file):
            enums[enum.full_name] = {str(v.number): v.name for v in enum.values}
        for service in file.services_by_name.values():
            services[service.full_name] = {
                method.name: {
                    "input": method.input_type.full_name,
                    "output": method.output_type.full_name,
                    "client_streaming": method.client_streaming,
                    "server_streaming": method.server_streaming,
                }
                for method in service.methods
            }
    return {"messages": messages, "enums": enums, "services": services}


def breaking_changes(old: dict, new: dict) -> list[str]:
    """Every change from `old` to `new` that would break a client or server built against `old`."""
    problems = []
    for name, fields in old["messages"].items():
        if name not in new["messages"]:
            problems.append(f"message {name} removed")
            continue
        for number, field in fields.items():
            now = new["messages"][name].get(number)
            if now is None:
                problems.append(f"{name} field {number} ({field['name']}) removed; reserve it instead")
            elif now != field:
                changed = ", ".join(
                    f"{k} {field[k]!r} -> {now[k]!r}" for k in field if field[k] != now.get(k)
                )
                problems.append(f"{name} field {number}: {changed}")
    for name, values in old["enums"].items():
        if name not in new["enums"]:
            problems.append(f"enum {name} removed")
            continue
        for number, value in values.items():
            if new["enums"][name].get(number) != value:
                problems.append(f"{name} value {number} ({value}) removed or renamed")
    for name, methods in old["services"].items():
        if name not in new["services"]:
            problems.append(f"service {name} removed")
            continue
        for method, shape in methods.items():
            now = new["services"][name].get(method)
            if now is None:
                problems.append(f"{name}/{method} removed")
            elif now != shape:
                problems.append(f"{name}/{method} changed: {shape} -> {now}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", action="store_true", help="write the snapshot after an additive change")
    args = parser.parse_args(argv)
    current = describe()
    old = json.loads(SNAPSHOT.read_text()) if SNAPSHOT.exists() else None
    problems = breaking_changes(old, current) if old else []
    for problem in problems:
        print(f"breaking: {problem}", file=sys.stderr)
    if args.update:
        if problems:
            print("not updating: breaking changes belong in caspian.v2", file=sys.stderr)
            return 1
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
        print(f"wrote {SNAPSHOT}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
