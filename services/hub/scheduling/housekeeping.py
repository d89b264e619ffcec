"""Step 8, housekeeping: delete the Jobs of cancelled AppWrappers that may remain on spokes, collect
AppWrappers finished longer than the TTL ago, and compact the change log."""

from __future__ import annotations

import logging
from datetime import datetime

from services.hub import lifecycle
from services.hub.clusters import ClusterRegistry
from services.hub.ports import DispatcherPort
from services.hub.scheduling.report import SchedulerConfig, short
from services.hub.store import Store


class Housekeeping:
    def __init__(
        self, store: Store, clusters: ClusterRegistry, dispatcher: DispatcherPort, config: SchedulerConfig
    ):
        self.store = store
        self.clusters = clusters
        self.dispatcher = dispatcher
        self.config = config

    async def run(self, now: datetime, clog: logging.LoggerAdapter) -> None:
        await self._clean_up(clog)
        await self._collect(now, clog)
        await self.store.compact(self.config.watch_history)

    async def _clean_up(self, clog: logging.LoggerAdapter) -> None:
        """Delete the Jobs of cancelled AppWrappers whose cancel did not reach the dispatcher."""
        records = await self.store.app_wrappers_needing_cleanup()
        clusters = self.clusters.clusters()
        done = []
        for record in records:
            message = record.message
            if message.status.target_cluster not in clusters:
                done.append(lifecycle.change(record.id, lifecycle.mark_cleaned))
                continue
            target = self.clusters.target_of(message.status.target_cluster, message.namespace)
            assert target is not None
            try:
                await self.dispatcher.cancel(record.id, target)
            except Exception as exc:  # noqa: BLE001 - tried again next cycle
                clog.warning("cancel on spoke failed", extra={"app_wrapper": record.id, "error": short(exc)})
                continue
            done.append(lifecycle.change(record.id, lifecycle.mark_cleaned))
        await lifecycle.commit(self.store, done)

    async def _collect(self, now: datetime, clog: logging.LoggerAdapter) -> None:
        """Delete AppWrappers finished longer than the TTL ago (0: keep them)."""
        if self.config.finished_ttl_seconds <= 0:
            return
        collected = await self.store.collect_finished(now.timestamp() - self.config.finished_ttl_seconds)
        if collected:
            clog.info("collected finished AppWrappers", extra={"collected": collected})
