"""One spoke as the dispatcher sees it: its client with retries on 5xx, 429 and timeouts, its circuit breaker, its
readiness, and its free capacity.

The kubernetes client is blocking, so every call runs on the spoke's own thread pool: a hung spoke ties up
its own threads and connections, never the event loop or another spoke's.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client as k8s

from services.dispatcher.capacity import Capacity, Resources, free_capacity
from services.dispatcher.client import SpokeClient, Timeouts
from services.dispatcher.errors import SpokeApiError, SpokeUnavailable, describe, is_transient, outcome_label
from services.dispatcher.kubeconfig import SpokeConfig
from services.dispatcher.metrics import DispatcherMetrics
from services.dispatcher.resilience import CircuitBreaker, Readiness, RetryPolicy

log = logging.getLogger("caspian.dispatcher.spokes")


@dataclass
class SpokePolicy:
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeouts: Timeouts = field(default_factory=Timeouts)
    breaker_failures: int = 5
    breaker_open_seconds: float = 10.0
    probe_interval_seconds: float = 2.0
    not_ready_after_seconds: float = 10.0
    threads: int = 8


ReadinessListener = Callable[["Spoke", bool, str], None]


class Spoke:
    """A spoke's client with the failure handling around it. Runs on the event loop; blocking work goes to the
    spoke's own executor."""

    def __init__(
        self,
        config: SpokeConfig,
        client: SpokeClient,
        policy: SpokePolicy,
        metrics: DispatcherMetrics,
        now: Callable[[], float] = time.monotonic,
    ):
        self.config = config
        self.client = client
        self.policy = policy
        self.metrics = metrics
        self.breaker = CircuitBreaker(policy.breaker_failures, policy.breaker_open_seconds, now)
        self.readiness = Readiness(policy.not_ready_after_seconds, now)
        self.executor = ThreadPoolExecutor(policy.threads, thread_name_prefix=f"spoke-{config.cluster}")
        self.listeners: list[ReadinessListener] = []
        self._last_error = ""
        metrics.spoke_ready.labels(config.cluster).set(0)
        metrics.circuit_open.labels(config.cluster).set(0)

    @property
    def cluster(self) -> str:
        return self.config.cluster

    @property
    def ready(self) -> bool:
        return self.readiness.ready is True

    # Readiness --------------------------------------------------------------------------------------------

    def contact(self) -> None:
        """The API answered (a call, a watch event or bookmark)."""
        if self.readiness.contact():
            log.info("spoke ready", extra={"cluster": self.cluster})
            self.metrics.spoke_ready.labels(self.cluster).set(1)
            self._notify(True, "")

    def check_readiness(self) -> None:
        if self.readiness.check(self._last_error):
            log.warning("spoke not ready", extra={"cluster": self.cluster, "reason": self.readiness.reason})
            self.metrics.spoke_ready.labels(self.cluster).set(0)
            self._notify(False, self.readiness.reason)

    def _notify(self, ready: bool, reason: str) -> None:
        for listener in self.listeners:
            listener(self, ready, reason)

    async def keep_probing(self) -> None:
        """Readiness needs a sign of life: when nothing else has reached the spoke for a probe interval, ask
        GET /version (bypassing the breaker, so a returning spoke is seen at once). This is a liveness probe,
        not a status poll: Job status comes from the watch. The probe runs beside the readiness check, so a
        hung probe (up to the request timeout) does not delay turning NotReady."""
        interval = self.policy.probe_interval_seconds
        probe: asyncio.Future | None = None
        try:
            while True:
                await asyncio.sleep(interval)
                idle = time.monotonic() - self.readiness.last_contact >= interval
                if (probe is None or probe.done()) and (idle or not self.ready):
                    probe = asyncio.ensure_future(self._probe())
                self.check_readiness()
        finally:
            if probe is not None:
                probe.cancel()

    async def _probe(self) -> None:
        try:
            await self._run(self.client.version, self.policy.timeouts.pair)
        except Exception as exc:  # noqa: BLE001 - any failure is a missed probe
            self._failed("probe", exc)
        else:
            self._answered()

    # Calls ------------------------------------------------------------------------------------------------

    async def _run(self, fn: Callable, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args))

    def _answered(self, outcome: str = "ok") -> None:
        self.breaker.record_success()
        self.metrics.circuit_open.labels(self.cluster).set(0)
        self.metrics.spoke_requests.labels(self.cluster, outcome).inc()
        self.contact()

    def _failed(self, what: str, exc: BaseException) -> None:
        self.breaker.record_failure()
        self.metrics.circuit_open.labels(self.cluster).set(1 if self.breaker.is_open else 0)
        self.metrics.spoke_requests.labels(self.cluster, outcome_label(exc)).inc()
        self._last_error = f"{what}: {type(exc).__name__}"

    async def call(self, what: str, fn: Callable, *args: Any) -> Any:
        """Run `fn(*args, timeout)` with retries on transient failures. Raises SpokeApiError for a 4xx answer
        and SpokeUnavailable when the spoke does not answer."""
        policy = self.policy.retry
        last: BaseException | None = None
        for attempt in range(policy.attempts):
            if not self.breaker.allow():
                self.metrics.spoke_requests.labels(self.cluster, "circuit_open").inc()
                raise SpokeUnavailable(
                    f"spoke {self.cluster} is failing fast (circuit open): {self._last_error}"
                )
            try:
                result = await self._run(fn, *args, self.policy.timeouts.pair)
            except Exception as exc:  # noqa: BLE001 - classified below
                if isinstance(exc, k8s.ApiException) and not is_transient(exc):
                    # The spoke answered: it is alive, the request was wrong.
                    self._answered("client_error")
                    raise SpokeApiError.from_api_exception(exc) from None
                if not is_transient(exc):
                    raise
                self._failed(what, exc)
                last = exc
                if attempt + 1 < policy.attempts:
                    await asyncio.sleep(policy.delay(attempt))
                continue
            self._answered()
            return result
        raise SpokeUnavailable(f"spoke {self.cluster} did not answer {what}: {describe(last)}")

    async def capacity(self, active_jobs: Iterable[tuple[str, Resources]]) -> Capacity:
        nodes = await self.call("list nodes", self.client.list_nodes)
        pods = await self.call(
            "list pods", self.client.list_pods, "status.phase!=Succeeded,status.phase!=Failed"
        )
        return free_capacity(nodes.get("items") or [], pods.get("items") or [], active_jobs)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.client.close()
