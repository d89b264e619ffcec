"""Interruptible jobs in caspianctl: the `interruptible:` block of a job file, and its segments for people.

    interruptible:
      resume_overhead: 5m    # run time each resume spends restoring the checkpoint (0 or more)
      min_segment: 1h        # the shortest segment worth running (optional: one slot of the plan)
      max_pauses: 4          # optional: at most this many pauses; 0 runs it in one piece

`interruptible: true` (or `{}`) marks a job interruptible with no overhead and the defaults.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta

from caspian.v1 import common_pb2
from caspianctl.quantities import QuantityError, format_duration, parse_duration
from services.common.timeconv import duration_seconds, from_timestamp, to_duration

INTERRUPTIBLE_KEYS = frozenset({"resume_overhead", "min_segment", "max_pauses"})


def interruptible_from(
    value: object, where: Callable[[str], str], problems: list[str]
) -> common_pb2.Interruptible | None:
    """The Interruptible of an `interruptible:` value; every problem goes to `problems`, one line each, placed
    by `where(key)` ("job.yaml:7: interruptible.min_segment"). None when the job is not interruptible."""
    if value is None or value is False:
        return None
    if value is True:
        return common_pb2.Interruptible()
    if not isinstance(value, dict):
        problems.append(
            f"{where('interruptible')}: expected a mapping of {', '.join(sorted(INTERRUPTIBLE_KEYS))} "
            f"or true, got {value!r}"
        )
        return None
    rule = common_pb2.Interruptible()
    for key in sorted((k for k in value if k not in INTERRUPTIBLE_KEYS), key=str):
        problems.append(
            f"{where(f'interruptible.{key}')}: unknown key; known: {', '.join(sorted(INTERRUPTIBLE_KEYS))}"
        )
    for key in ("resume_overhead", "min_segment"):
        if key not in value:
            continue
        try:
            duration = parse_duration(value[key])
        except QuantityError as exc:
            problems.append(f"{where(f'interruptible.{key}')}: {exc}")
            continue
        if duration < timedelta(0):
            problems.append(f"{where(f'interruptible.{key}')}: must not be negative, got {value[key]!r}")
            continue
        getattr(rule, key).CopyFrom(to_duration(duration.total_seconds()))
    if "max_pauses" in value:
        pauses = value["max_pauses"]
        if isinstance(pauses, bool) or not isinstance(pauses, int):
            problems.append(f"{where('interruptible.max_pauses')}: expected a whole number, got {pauses!r}")
        elif not 0 <= pauses < 2**31:
            problems.append(f"{where('interruptible.max_pauses')}: must be at least 0, got {pauses}")
        else:
            rule.max_pauses = pauses
    return rule


def _stamp(message, field: str) -> str:
    if not message.HasField(field):
        return "…"
    return from_timestamp(getattr(message, field)).strftime("%m-%d %H:%M")


def segments_text(segments: Sequence[common_pb2.RunSegment], limit: int = 6) -> str:
    """ "carbon-kr 06-01 02:00–06-01 05:00, 06-01 09:00–…" (the cluster once, where it changes)."""
    if not segments:
        return "-"
    parts, cluster = [], ""
    for segment in segments[:limit]:
        span = f"{_stamp(segment, 'start')}–{_stamp(segment, 'end')}"
        parts.append(span if segment.cluster == cluster else f"{segment.cluster} {span}")
        cluster = segment.cluster
    if len(segments) > limit:
        parts.append(f"+{len(segments) - limit} more")
    return ", ".join(parts)


def rule_text(rule: common_pb2.Interruptible) -> str:
    pauses = f"at most {rule.max_pauses} pauses" if rule.HasField("max_pauses") else "no pause limit"
    minimum, overhead = duration_seconds(rule.min_segment), duration_seconds(rule.resume_overhead)
    return (
        f"resume overhead {format_duration(overhead) if overhead else 'none'}, min segment "
        f"{format_duration(minimum) if minimum else 'one slot'}, {pauses}"
    )


def progress_text(aw: common_pb2.AppWrapper) -> str:
    """ "1h30m of 4h (37.5 %), 2 pauses" for an interruptible job; "-" for one that is not."""
    if not aw.HasField("interruptible"):
        return "-"
    done = duration_seconds(aw.status.progress)
    runtime = duration_seconds(aw.template.expected_runtime)
    share = f" ({100 * done / runtime:.1f} %)" if runtime > 0 else ""
    pauses = aw.status.pauses
    return f"{format_duration(done) if done else '0s'} of {format_duration(runtime)}{share}, {pauses} pause{'s' * (pauses != 1)}"


def segment_counts(aw: common_pb2.AppWrapper) -> str:
    """ "run/planned" segment counts for the wide table; "-" for a job that is not interruptible."""
    if not aw.HasField("interruptible"):
        return "-"
    return f"{len(aw.status.run_segments)}/{len(aw.status.planned_segments)}"
