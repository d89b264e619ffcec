"""Step 7, the segment gates of interruptible jobs (run by gates.py in the same pass, under its lock).

- Suspend: a Running interruptible job whose running segment's planned end has come, with more planned
  segments after it, is suspended (SetJobSuspended suspend=true), then PAUSED: Suspended, holding no capacity
  until its next segment; its remaining work is re-planned every cycle from its progress.
- Resume: a Suspended job whose next segment's start has come is resumed (suspend=false), then RESUMED:
  Running. A resume the dispatcher refuses because the deadline has passed is final (RESUME_REFUSED).
- A job that is not interruptible is never suspended (segments.due_to_suspend).

The dispatcher's SetJobSuspended is idempotent, so a pass that failed to write its change (the hub stopped
after the call) repeats the call harmlessly on the next pass; a failed call is retried on the next pass.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime

from services.hub import lifecycle, segments
from services.hub.clusters import ClusterRegistry
from services.hub.phases import RUNNING, SUSPENDED
from services.hub.ports import DeadlinePassed, DispatcherPort, Refused
from services.hub.scheduling.report import short
from services.hub.store import AppWrapperRecord, Store, Update


def due(
    records: Sequence[AppWrapperRecord], now_s: float
) -> tuple[list[AppWrapperRecord], list[AppWrapperRecord]]:
    """The jobs to suspend and the jobs to resume at `now_s`: the gate decisions."""
    to_suspend = [r for r in records if r.phase == RUNNING and segments.due_to_suspend(r.message, now_s)]
    to_resume = [r for r in records if r.phase == SUSPENDED and segments.due_to_resume(r.message, now_s)]
    return to_suspend, to_resume


def next_segment_gate(records: Sequence[AppWrapperRecord], now_s: float) -> float | None:
    """The next planned segment end (of a running job) or start (of a suspended one) after `now_s`."""
    times = []
    for r in records:
        spans = segments.planned(r.message.status)
        if r.phase == RUNNING and len(spans) > 1 and spans[0].end > now_s:
            times.append(spans[0].end)
        elif r.phase == SUSPENDED and spans and spans[0].start > now_s:
            times.append(spans[0].start)
    return min(times) if times else None


async def open_and_close(
    store: Store,
    clusters: ClusterRegistry,
    dispatcher: DispatcherPort,
    records: Sequence[AppWrapperRecord],
    now: datetime,
    cycle: int,
    concurrency: int,
    clog: logging.LoggerAdapter,
) -> int:
    """Suspend and resume what is due; the number of Jobs changed."""
    to_suspend, to_resume = due(records, now.timestamp())
    if not (to_suspend or to_resume):
        return 0
    gate = asyncio.Semaphore(max(1, concurrency))
    results: list[Update] = []

    async def send(record: AppWrapperRecord, suspend: bool) -> None:
        status = record.message.status
        target = clusters.target_of(status.target_cluster, record.message.namespace)
        if target is None:
            clog.warning("segment gate: target cluster gone", extra={"app_wrapper": record.id})
            return
        async with gate:
            try:
                await dispatcher.set_suspended(record.id, target, suspend)
            except DeadlinePassed as exc:
                results.append(
                    lifecycle.change(
                        record.id,
                        lifecycle.resume_refused,
                        reason=f"deadline passed while suspended: the dispatcher refused the resume ({short(exc)})",
                        cycle=cycle,
                    )
                )
                return
            except Refused as exc:  # the Job is gone or finished: its events say what happened
                clog.warning("segment gate refused", extra={"app_wrapper": record.id, "error": short(exc)})
                return
            except Exception as exc:  # noqa: BLE001 - retried on the next pass
                clog.warning("segment gate failed", extra={"app_wrapper": record.id, "error": short(exc)})
                return
        operation = lifecycle.pause if suspend else lifecycle.resume
        results.append(lifecycle.change(record.id, operation, at=now))

    await asyncio.gather(
        *(send(r, True) for r in to_suspend),
        *(send(r, False) for r in to_resume),
    )
    await lifecycle.commit(store, results)
    clog.info("segment gates", extra={"suspended": len(to_suspend), "resumed": len(to_resume)})
    return len(results)
