"""The validity rule for a job's fields, shared by the hub's door and the optimizer.

Whatever the hub accepts, the optimizer can represent: a runtime of {seconds: 0, nanos: 1} passed a door that
asked for "> 0" while the optimizer, which counts in microseconds, saw zero and refused the whole Solve. Both
now ask these functions. The hub's door adds checks of its own on top (a Job must request CPU and memory, a
runtime within the planning horizon, a deadline that leaves room for the runtime), so a job it accepts always
passes here; the optimizer refuses a job failing here alone, as a per-job outcome.

Each check returns None or (field suffix, message); callers prefix the field path they know.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable

from services.common.timefields import duration_problem

# A Job shorter than a second cannot be scheduled, started and observed by Kubernetes; it also keeps every
# runtime far above the optimizer's microsecond resolution.
MIN_RUNTIME_SECONDS = 1.0
RESOURCE_NAMES = ("cpu_millis", "memory_bytes", "gpus")

Problem = tuple[str, str]


def runtime_problem(seconds: int, nanos: int) -> Problem | None:
    """A job's expected runtime, as a protobuf Duration's two parts."""
    problem = duration_problem(seconds, nanos)
    if problem is not None:
        return problem
    total = seconds + nanos / 1e9
    if not math.isfinite(total) or total < MIN_RUNTIME_SECONDS:
        return "", f"must be at least {MIN_RUNTIME_SECONDS:g} s, got {_seconds_text(seconds, nanos)}"
    return None


def resources_problem(cpu_millis: int, memory_bytes: int, gpus: int) -> Problem | None:
    for name, value in zip(RESOURCE_NAMES, (cpu_millis, memory_bytes, gpus), strict=True):
        if value < 0:
            return name, f"must not be negative, got {value}"
    return None


def window_problem(earliest_s: float | None, deadline_s: float | None) -> Problem | None:
    """Earliest start and deadline in epoch seconds (None: not given)."""
    if earliest_s is not None and deadline_s is not None and deadline_s < earliest_s:
        return "deadline", "is before the earliest start"
    return None


def clusters_problem(lists: Iterable[tuple[str, Iterable[str]]], known: Collection[str]) -> Problem | None:
    """Every cluster a job names (required, preferred, excluded, ...) must be one the caller knows."""
    for list_name, names in lists:
        for k, name in enumerate(names):
            if name not in known:
                shown = name if len(name) <= 80 else name[:77] + "..."
                return f"{list_name}[{k}]", f"unknown cluster {shown!r}"
    return None


def _seconds_text(seconds: int, nanos: int) -> str:
    if nanos == 0:
        return f"{seconds} s"
    return f"{seconds} s {nanos} ns"
