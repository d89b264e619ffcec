"""Where and how results are shown: `-o table` (default), `wide`, `name`, `json` or `yaml`.

Results go to stdout, errors to stderr. A table's footer (counts, the next page) goes to stdout under the
table on a terminal, and is left out when stdout is piped, so that `caspianctl list | wc -l` counts rows.
Piped tables have no borders and no trailing spaces. JSON and YAML are the protobuf field names with
readable values (see `data_of`): stable for scripts, and never a traceback on a malformed stored value.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import IO

import yaml
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from rich.console import Console, RenderableType
from rich.table import Table

FORMATS = ("table", "wide", "json", "yaml", "name")
PIPE_WIDTH = 240
# Figures are rounded to this many decimals: float noise such as -2.2e-16 becomes 0.
DECIMALS = 6


def _number(value: float) -> float | str | None:
    if math.isnan(value) or math.isinf(value):
        return str(value)  # JSON has no NaN; a string says what it was
    rounded = round(value, DECIMALS)
    return 0.0 if rounded == 0 else rounded


def _timestamp(message: Message) -> str:
    seconds = message.seconds + message.nanos / 1e9
    try:
        moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    except OverflowError:
        return f"{seconds}s since 1970"
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def _duration(message: Message) -> str:
    # Seconds and nanos added as they are, so that a stored Duration with mixed signs still prints.
    total = round(message.seconds + message.nanos / 1e9, 9)
    return f"{int(total)}s" if total == int(total) else f"{total:.9f}".rstrip("0") + "s"


def _value(field: FieldDescriptor, value):
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return data_of(value)
    if field.type == FieldDescriptor.TYPE_ENUM:
        enum = field.enum_type.values_by_number.get(value)
        return enum.name if enum is not None else value
    if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return _number(value)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return value.hex()
    return value


def data_of(message: Message):
    """A message as plain data: proto field names, set fields only, enums by name, numbers as numbers,
    timestamps RFC 3339, durations "90s" (both as protobuf's JSON writes them, and readable)."""
    name = message.DESCRIPTOR.full_name
    if name == "google.protobuf.Timestamp":
        return _timestamp(message)
    if name == "google.protobuf.Duration":
        return _duration(message)
    data = {}
    for field, value in message.ListFields():
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            data[field.name] = {str(k): _value(value_field, v) for k, v in sorted(value.items())}
        elif field.is_repeated:
            data[field.name] = [_value(field, v) for v in value]
        else:
            data[field.name] = _value(field, value)
    return data


class Output:
    def __init__(
        self,
        fmt: str = "table",
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
        terminal: bool | None = None,
    ):
        self.format = fmt
        self.console = Console(file=stdout, soft_wrap=True, highlight=False, force_terminal=terminal)
        self.errors = Console(file=stderr, stderr=stderr is None, highlight=False, soft_wrap=True)
        for console in (self.console, self.errors):
            if not console.is_terminal:
                # Piped output is read by tools such as grep: no wrapping at 80 columns.
                console.width = PIPE_WIDTH

    @property
    def is_table(self) -> bool:
        return self.format in ("table", "wide")

    @property
    def wide(self) -> bool:
        return self.format == "wide"

    def show(
        self,
        data: Message | dict | list,
        table: Callable[[bool], RenderableType | str] | None = None,
        names: Iterable[str] = (),
    ) -> None:
        """One result in the chosen format: `table(wide)` for people, `names` for -o name, else the data."""
        if self.is_table:
            if table is not None:
                shown = table(self.wide)
                self.line(shown) if isinstance(shown, str) else self.table(shown)
        elif self.format == "name":
            for name in names:
                self.line(name)
        else:
            self.data(data_of(data) if isinstance(data, Message) else data)

    def data(self, value: dict | list) -> None:
        if self.format == "json":
            self.console.out(json.dumps(value, indent=2), highlight=False)
        else:
            self.console.out(yaml.safe_dump(value, sort_keys=False).rstrip("\n"), highlight=False)

    def line(self, text: str) -> None:
        self.console.out(text, highlight=False)

    def footer(self, text: str) -> None:
        """Under a table, on a terminal only."""
        if self.is_table and self.console.is_terminal:
            self.console.print(text, markup=False, style="dim")

    def note(self, text: str) -> None:
        self.errors.print(text, markup=False, style="dim")

    def error(self, text: str) -> None:
        self.errors.print(f"error: {text}", markup=False, style="bold red")

    def table(self, table: RenderableType) -> None:
        if self.console.is_terminal:
            self.console.print(table)
            return
        if isinstance(table, Table):
            table.box = None
            table.show_edge = False
            table.pad_edge = False
        with self.console.capture() as captured:
            self.console.print(table)
        lines = [line.rstrip() for line in captured.get().splitlines()]
        self.console.out("\n".join(lines), highlight=False)
