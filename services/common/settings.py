"""Settings: one immutable object per service, read from CASPIAN_<SERVICE>_* variables and checked at start.

A service declares a frozen dataclass whose fields carry a default; `load_settings` reads each field from
`<prefix><FIELD_NAME_UPPER>` and parses it by the field's type. A bad value raises SettingsError naming
the variable, and `exit_on_bad_settings` turns that into one line on stderr and exit status 2.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class SettingsError(ValueError):
    def __init__(self, variable: str, message: str):
        self.variable = variable
        super().__init__(f"{variable}: {message}")


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


def _parse_int(raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise ValueError(f"expected an integer, got {raw!r}") from None


def _parse_float(raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError(f"expected a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {raw!r}")
    return value


def _parse_list(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


_PARSERS: dict[Any, Callable[[str], Any]] = {
    bool: _parse_bool,
    int: _parse_int,
    float: _parse_float,
    str: lambda raw: raw,
    tuple[str, ...]: _parse_list,
}


def _parser_for(tp: Any) -> Callable[[str], Any]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        inner = _parser_for(args[0])
        return lambda raw: None if raw.strip() == "" else inner(raw)
    if tp in _PARSERS:
        return _PARSERS[tp]
    raise TypeError(f"no settings parser for {tp!r}")


def port(value: int) -> None:
    if not 0 <= value <= 65535:
        raise ValueError(f"expected a port 0-65535, got {value}")


def positive(value: float) -> None:
    if value <= 0:
        raise ValueError(f"must be above zero, got {value}")


def non_negative(value: float) -> None:
    if value < 0:
        raise ValueError(f"must not be negative, got {value}")


def one_of(*choices: str) -> Callable[[str], None]:
    def check(value: str) -> None:
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {value!r}")

    return check


def setting(default: Any, check: Callable[[Any], None] | None = None, help: str = "") -> Any:
    """A settings field with a default, an optional check and a line of help for the docs."""
    return dataclasses.field(default=default, metadata={"check": check, "help": help})


def load_settings(cls: type[T], prefix: str, env: Mapping[str, str] | None = None) -> T:
    env = os.environ if env is None else env
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        variable = f"{prefix}{field.name.upper()}"
        tp = hints[field.name]
        value = field.default
        if variable in env:
            try:
                value = _parser_for(tp)(env[variable])
            except ValueError as exc:
                raise SettingsError(variable, str(exc)) from None
        check = field.metadata.get("check")
        if check is not None and value is not None:
            try:
                check(value)
            except ValueError as exc:
                raise SettingsError(variable, str(exc)) from None
        values[field.name] = value
    return cls(**values)


def exit_on_bad_settings(loader: Callable[[], T]) -> T:
    """Run a settings loader; on a bad value print one line naming the variable and exit 2."""
    try:
        return loader()
    except SettingsError as exc:
        print(f"invalid setting {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def describe(cls: type, prefix: str) -> list[tuple[str, str, str]]:
    """(variable, default, help) for every field: the configuration reference."""
    rows = []
    for field in dataclasses.fields(cls):
        rows.append((f"{prefix}{field.name.upper()}", repr(field.default), field.metadata.get("help", "")))
    return rows
