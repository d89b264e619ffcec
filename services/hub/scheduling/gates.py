"""Step 6, gates: every Scheduled job whose planned start has come turns Dispatching and goes to the dispatcher.

Runs in every cycle and whenever the loop wakes at a planned start, also while a cycle waits on the
optimizer: one pass at a time (a lock), every write conditional on the revision it read. A job whose target
cluster is gone or not ready goes back to Pending for re-planning. A job whose deadline has passed before its
Job was created (it waited at the gate, or the dispatcher refused it with reason DEADLINE_PASSED) is
Unschedulable at once with that reason: no retry can help. Any other failed dispatch is retried on a later
pass up to `max_dispatch_attempts`, then the job fails.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from services.common.clock import Clock
from services.common.timeconv import timestamp_seconds
from services.hub import lifecycle
from services.hub.clusters import ClusterRegistry
from services.hub.metrics import HubMetrics
from services.hub.phases import DISPATCHING, SCHEDULED
from services.hub.ports import DeadlinePassed, DispatcherPort
from services.hub.scheduling import segment_gates
from services.hub.scheduling.report import CycleLog, SchedulerConfig, iso, short
from services.hub.store import AppWrapperRecord, Store, Update

log = logging.getLogger("caspian.hub.scheduler")


class Gates:
    def __init__(
        self,
        store: Store,
        clusters: ClusterRegistry,
        dispatcher: DispatcherPort,
        clock: Clock,
        config: SchedulerConfig,
        metrics: HubMetrics | None,
    ):
        self.store = store
        self.clusters = clusters
        self.dispatcher = dispatcher
        self.clock = clock
        self.config = config
        self.metrics = metrics
        self._lock = asyncio.Lock()

    async def dispatch_due(self, cycle: int, clog: logging.LoggerAdapter | None = None) -> int:
        """Open the gate of every Scheduled job whose start has come and hand it to the dispatcher.

        Also re-sends Dispatching jobs the dispatcher never confirmed (e.g. the hub stopped mid-call): Job
        names are deterministic, so a repeat finds the Job instead of creating another.
        """
        async with self._lock:
            return await self._dispatch_due(cycle, clog or CycleLog(log, {"cycle": cycle}))

    async def _dispatch_due(self, cycle: int, clog: logging.LoggerAdapter) -> int:
        now = self.clock.now()
        now_s = now.timestamp()
        clusters = self.clusters.clusters()
        records = await self.store.gate_app_wrappers(now_s)
        opens: list[Update] = []
        back: list[Update] = []
        for record in records:
            status = record.message.status
            due = record.phase == SCHEDULED and timestamp_seconds(status.planned_start) <= now_s
            unconfirmed = record.phase == DISPATCHING and not status.job_name
            if not (due or unconfirmed):
                continue
            deadline_s = (
                timestamp_seconds(record.message.deadline) if record.message.HasField("deadline") else None
            )
            if deadline_s is not None and deadline_s <= now_s:
                back.append(
                    lifecycle.change(
                        record.id,
                        lifecycle.expire,
                        revision=record.revision,
                        reason=f"deadline passed while it waited to be dispatched: the deadline was "
                        f"{iso(deadline_s)}, the gate opened at {iso(now_s)}",
                        cycle=cycle,
                    )
                )
                continue
            info = clusters.get(status.target_cluster)
            if info is None or not info.ready:
                why = f"target cluster {status.target_cluster} is {'gone' if info is None else 'not ready'}"
                back.append(
                    lifecycle.change(
                        record.id,
                        lifecycle.requeue,
                        revision=record.revision,
                        reason=f"re-planning: {why}",
                        cycle=cycle,
                    )
                )
                continue
            opens.append(lifecycle.change(record.id, lifecycle.open_gate, revision=record.revision))
        await lifecycle.commit(self.store, back)
        await segment_gates.open_and_close(
            self.store,
            self.clusters,
            self.dispatcher,
            records,
            now,
            cycle,
            self.config.dispatch_concurrency,
            clog,
        )
        if not opens:
            return 0
        opened = [r for r in await self.store.update_app_wrappers(opens) if r is not None]
        opened = [r for r in opened if r.phase == DISPATCHING]
        gate = asyncio.Semaphore(self.config.dispatch_concurrency)
        results: list[Update] = []

        async def send(record: AppWrapperRecord) -> None:
            message = record.message
            target = self.clusters.target_of(message.status.target_cluster, message.namespace)
            assert target is not None
            async with gate:
                began = time.perf_counter()
                try:
                    result = await self.dispatcher.dispatch(message, target, now)
                except DeadlinePassed as exc:  # final: no retry can help
                    results.append(
                        lifecycle.change(
                            record.id,
                            lifecycle.expire,
                            reason=f"deadline passed: the dispatcher refused the Job ({short(exc)})",
                            cycle=cycle,
                        )
                    )
                    clog.warning("dispatch refused: deadline passed", extra={"app_wrapper": record.id})
                    return
                except Exception as exc:  # noqa: BLE001 - retried on a later cycle, up to the attempt limit
                    results.append(self._dispatch_failed(record, exc))
                    clog.warning("dispatch failed", extra={"app_wrapper": record.id, "error": short(exc)})
                    return
                if self.metrics is not None:
                    self.metrics.dispatch_latency.observe(time.perf_counter() - began)
            results.append(lifecycle.change(record.id, lifecycle.confirm_dispatch, job_name=result.job_name))

        await asyncio.gather(*(send(r) for r in opened))
        await lifecycle.commit(self.store, results)
        if opened:
            clog.info("gates opened", extra={"dispatched": len(opened)})
        return len(opened)

    def _dispatch_failed(self, record: AppWrapperRecord, exc: Exception) -> Update:
        return lifecycle.change(
            record.id,
            lifecycle.dispatch_failed,
            attempts=record.message.status.dispatch_attempts,
            limit=self.config.max_dispatch_attempts,
            error=short(exc),
        )

    async def next_gate_after(self, now: datetime) -> datetime | None:
        """The next planned start after `now`, for the loop to wake at."""
        now_s = now.timestamp()
        segment = segment_gates.next_segment_gate(await self.store.gate_app_wrappers(now_s), now_s)
        start = await self.store.next_planned_start(now_s)
        starts = [s for s in (segment, start) if s is not None]
        return datetime.fromtimestamp(min(starts), UTC) if starts else None
