"""Job status from one spoke namespace, without polling.

A JobWatcher lists the managed Jobs, then watches from the list's resourceVersion, resumes a watch that ends from
the last resourceVersion seen, and re-lists when the spoke answers 410 Gone (or after an outage). Every Job object
seen goes to JobEvents (tracking.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from kubernetes import client as k8s
from kubernetes.watch.watch import iter_resp_lines

from services.dispatcher.client import Obj
from services.dispatcher.manifests import MANAGED_SELECTOR
from services.dispatcher.spoke import Spoke
from services.dispatcher.tracking import JobEvents

log = logging.getLogger("caspian.dispatcher.watch")


class WatchExpired(Exception):
    """410 Gone: the resourceVersion is too old; list again."""


class WatchFailed(Exception):
    pass


@dataclass(frozen=True)
class WatchPolicy:
    server_timeout_seconds: int = 300
    backoff_base_seconds: float = 0.2
    backoff_max_seconds: float = 5.0


class JobWatcher:
    """List, then watch, the managed Jobs of one namespace on one spoke, for as long as the dispatcher runs."""

    def __init__(self, spoke: Spoke, namespace: str, events: JobEvents, policy: WatchPolicy):
        self.spoke = spoke
        self.namespace = namespace
        self.events = events
        self.policy = policy
        # The stream blocks a thread for its whole life: give it its own.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"watch-{spoke.cluster}-{namespace}")
        self._response = None
        self._resync = False
        self._listing = False
        self._stopping = False
        self._wakeup = asyncio.Event()
        self.relists = 0

    def request_resync(self) -> None:
        """List again soon (the spoke just came back or went away); a list already under way will do."""
        if self._listing:
            return
        self._resync = True
        self._wakeup.set()
        self._interrupt()

    def _interrupt(self) -> None:
        response = self._response
        if response is not None:
            try:
                response.shutdown()
            except Exception:  # noqa: BLE001 - the stream is going away either way
                log.debug("watch shutdown failed", exc_info=True)

    async def run(self) -> None:
        cluster, rv, failures = self.spoke.cluster, None, 0
        while True:
            try:
                if rv is None or self._resync:
                    rv = None  # until a list succeeds, never resume an old watch
                    rv = await self._list()
                rv = await self._watch(rv)
                failures = 0
            except asyncio.CancelledError:
                raise
            except WatchExpired:
                log.info(
                    "watch expired; listing again", extra={"cluster": cluster, "namespace": self.namespace}
                )
                rv = None
            except Exception as exc:  # noqa: BLE001 - a spoke can fail in many ways; all mean wait and retry
                if self._resync:
                    continue
                failures += 1
                delay = random.random() * min(
                    self.policy.backoff_max_seconds, self.policy.backoff_base_seconds * 2**failures
                )
                log.info(
                    "watch failed; retrying",
                    extra={"cluster": cluster, "namespace": self.namespace, "error": repr(exc)[:200]},
                )
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), delay)
                except TimeoutError:
                    pass

    async def _list(self) -> str:
        self._resync = False
        self._listing = True
        try:
            listing = await self.spoke.call(
                "list jobs", self.spoke.client.list_jobs, self.namespace, MANAGED_SELECTOR
            )
        finally:
            self._listing = False
        self.relists += 1
        self.events.relisted(self.spoke.cluster, self.namespace, listing.get("items") or [])
        self.events.mark_synced(self.spoke.cluster, self.namespace)
        return listing["metadata"]["resourceVersion"]

    async def _watch(self, rv: str) -> str:
        loop = asyncio.get_running_loop()
        timeouts = self.spoke.policy.timeouts
        # The server ends the stream after server_timeout; the read timeout only catches a spoke gone silent.
        read_timeout = self.policy.server_timeout_seconds + timeouts.read
        client = self.spoke.client

        def consume() -> str:
            last = rv
            try:
                response = client.watch_jobs(
                    self.namespace,
                    MANAGED_SELECTOR,
                    rv,
                    self.policy.server_timeout_seconds,
                    (timeouts.connect, read_timeout),
                )
            except k8s.ApiException as exc:
                if exc.status == 410:
                    raise WatchExpired() from None
                raise
            self._response = response
            try:
                if self._resync or self._stopping:
                    return last
                for line in iter_resp_lines(response):
                    if not line:
                        continue
                    event = json.loads(line)
                    kind, obj = event.get("type"), event.get("object") or {}
                    if kind == "ERROR":
                        if obj.get("code") == 410:
                            raise WatchExpired()
                        raise WatchFailed(f"{obj.get('code')} {obj.get('reason')}: {obj.get('message')}")
                    last = (obj.get("metadata") or {}).get("resourceVersion") or last
                    loop.call_soon_threadsafe(self._deliver, kind, obj)
                    if self._resync or self._stopping:
                        break
                return last
            finally:
                self._response = None
                # Close, not just release: a stream left half-read must never go back to the pool for reuse.
                response.close()
                response.release_conn()

        return await loop.run_in_executor(self._executor, consume)

    def _deliver(self, kind: str, obj: Obj) -> None:
        self.spoke.contact()
        if kind == "BOOKMARK":
            return
        if kind == "DELETED":
            self.events.deleted(self.spoke.cluster, obj)
        else:
            self.events.observe(self.spoke.cluster, obj, from_watch=True)

    def close(self) -> None:
        self._stopping = True
        self._interrupt()
        self._executor.shutdown(wait=False, cancel_futures=True)
