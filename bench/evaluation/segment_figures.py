"""Where the saving of interruptible jobs comes from: per run, by job length and by dirty hours.

For each run of an interruptible setting (".../int50", ".../int100"), under the row's "segments" key:

paused_jobs        jobs that ran in more than one segment; `segments` the segments run in all
kg_by_length       emissions of the jobs by length: "<1h", "1-4h", "4-12h", ">=12h" (true trace)
dirty_share        share of the core-hours run that fell in dirty hours: the top quarter of its zone's
                   hourly intensities over the run's span (the evening peaks, mostly)

The report (report_interruptible.py) compares CASPIAN with CASPIAN in one piece on these: the extra saving
per length, and how much run time left the dirty hours.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from .carbon import job_grams, true_trace
from .workload import Instance

LENGTHS = (("<1h", 3600.0), ("1-4h", 4 * 3600.0), ("4-12h", 12 * 3600.0), (">=12h", math.inf))
DIRTY_QUANTILE = 0.75


def length_bucket(runtime_s: float) -> str:
    return next(name for name, upper in LENGTHS if runtime_s < upper)


def dirty_hours(instance: Instance) -> dict[str, set[int]]:
    """Per cluster, the hours (unix hour numbers) in the top quarter of its zone's intensities."""
    first = math.floor(instance.start.timestamp() / 3600)
    last = math.ceil(instance.end / 3600)
    out = {}
    for cluster in instance.clusters:
        trace = true_trace(cluster.zone, instance.seed)
        values = {h: trace.value_at(datetime.fromtimestamp(h * 3600, UTC)) for h in range(first, last)}
        ranked = sorted(values.values())
        threshold = ranked[min(len(ranked) - 1, int(DIRTY_QUANTILE * len(ranked)))]
        out[cluster.name] = {h for h, v in values.items() if v >= threshold}
    return out


def _dirty_seconds(start: float, end: float, dirty: set[int]) -> float:
    total, t = 0.0, start
    while t < end:
        hour = math.floor(t / 3600)
        step = min(end, (hour + 1) * 3600) - t
        total += step if hour in dirty else 0.0
        t += step
    return total


def segment_figures(instance: Instance, outcomes: dict, dirty: dict[str, set[int]] | None = None) -> dict:
    """The "segments" figures of one run's outcomes (simulate.JobOutcome or oracle.OracleJob values)."""
    dirty = dirty_hours(instance) if dirty is None else dirty
    clusters = {c.name: c for c in instance.clusters}
    by_length = {name: 0.0 for name, _ in LENGTHS}
    paused = segments = 0
    core_s = dirty_core_s = 0.0
    for job in instance.jobs:
        o = outcomes.get(job.id)
        if o is None or o.start is None or o.end is None or not o.cluster:
            continue
        spans = getattr(o, "segments", ()) or ((o.start, o.end),)
        paused += len(spans) > 1
        segments += len(spans)
        cluster = clusters[o.cluster]
        trace = true_trace(cluster.zone, instance.seed)
        by_length[length_bucket(job.runtime)] += sum(job_grams(job, cluster, trace, a, b) for a, b in spans)
        for a, b in spans:
            core_s += job.cpus * (b - a)
            dirty_core_s += job.cpus * _dirty_seconds(a, b, dirty[o.cluster])
    return {
        "paused_jobs": paused,
        "segments": segments,
        "kg_by_length": {k: round(v / 1000, 6) for k, v in by_length.items()},
        "dirty_share": round(dirty_core_s / core_s, 6) if core_s else 0.0,
    }
