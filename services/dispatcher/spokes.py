"""Spoke clusters as the dispatcher sees them: one official kubernetes client per kube context, calls with
retries (exponential backoff, full jitter) on 5xx, 429 and timeouts, a circuit breaker per spoke, readiness
(NotReady when the API has not answered for a while), and free capacity.

The kubernetes client is blocking, so every call runs on the spoke's own thread pool: a hung spoke ties up
its own threads and connections, never the event loop or another spoke's.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import random
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.utils.quantity import parse_quantity

from services.dispatcher.metrics import DispatcherMetrics

log = logging.getLogger("caspian.dispatcher.spokes")

Obj = dict[str, Any]
GPU = "nvidia.com/gpu"


# Errors ----------------------------------------------------------------------------------------------------


class SpokeUnavailable(Exception):
    """The spoke did not answer: timeouts, refused connections, 5xx after every retry, or an open circuit."""


class SpokeApiError(Exception):
    """The spoke answered with a client error (4xx); `status` is the HTTP code, `reason` the Status reason."""

    def __init__(self, status: int, reason: str, message: str):
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @classmethod
    def from_api_exception(cls, exc: k8s.ApiException) -> SpokeApiError:
        reason, message = exc.reason or "", ""
        try:
            body = json.loads(exc.body or "{}")
            reason, message = body.get("reason") or reason, body.get("message") or ""
        except (TypeError, ValueError):
            pass
        return cls(int(exc.status or 0), str(reason), str(message))


def is_transient(exc: BaseException) -> bool:
    """Worth another try: the spoke did not answer, or answered 5xx/429."""
    if isinstance(exc, k8s.ApiException):
        status = int(exc.status or 0)
        return status == 0 or status == 429 or status >= 500
    return isinstance(exc, urllib3.exceptions.HTTPError | OSError | TimeoutError)


def _outcome(exc: BaseException) -> str:
    if isinstance(exc, k8s.ApiException):
        return "server_error" if int(exc.status or 0) >= 500 or exc.status == 429 else "client_error"
    if isinstance(exc, urllib3.exceptions.TimeoutError | TimeoutError):
        return "timeout"
    return "unreachable"


# Retry policy, circuit breaker, readiness -------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    base_seconds: float = 0.1
    max_seconds: float = 2.0

    def delay(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """Full jitter: uniform in [0, min(max, base * 2**attempt)]."""
        return rng() * min(self.max_seconds, self.base_seconds * 2**attempt)


class CircuitBreaker:
    """Closed -> open after `failures` consecutive failures; open fails calls at once for `open_seconds`; then
    half-open lets one call through, whose outcome closes or re-opens it."""

    def __init__(self, failures: int, open_seconds: float, now: Callable[[], float] = time.monotonic):
        self.failures_to_open = failures
        self.open_seconds = open_seconds
        self._now = now
        self.failures = 0
        self.opened_at: float | None = None
        self._trial = False

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None

    def allow(self) -> bool:
        if self.opened_at is None:
            return True
        if self._now() - self.opened_at >= self.open_seconds and not self._trial:
            self._trial = True
            return True
        return False

    def record_success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self._trial = False

    def record_failure(self) -> None:
        self.failures += 1
        self._trial = False
        if self.opened_at is not None or self.failures >= self.failures_to_open:
            self.opened_at = self._now()


class Readiness:
    """Ready while the API has answered within `not_ready_after` seconds. Starts undecided: a spoke never heard
    from turns NotReady only once that time has passed since start."""

    def __init__(self, not_ready_after: float, now: Callable[[], float] = time.monotonic):
        self.not_ready_after = not_ready_after
        self._now = now
        self.last_contact = now()
        self.ready: bool | None = None
        self.reason = "not contacted yet"

    def contact(self) -> bool:
        """Record an answer; True if the spoke just turned Ready."""
        self.last_contact = self._now()
        changed = self.ready is not True
        self.ready, self.reason = True, ""
        return changed

    def check(self, why: str = "") -> bool:
        """True if the spoke just turned NotReady."""
        silent = self._now() - self.last_contact
        if self.ready is not False and silent >= self.not_ready_after:
            self.ready = False
            self.reason = f"API has not answered for {silent:.1f}s" + (f": {why}" if why else "")
            return True
        return False


# Capacity ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resources:
    cpu_millis: int = 0
    memory_bytes: int = 0
    gpus: int = 0

    @classmethod
    def from_quantities(cls, amounts: dict[str, Any] | None) -> Resources:
        amounts = amounts or {}
        cpu = parse_quantity(amounts.get("cpu", 0)) * 1000
        return cls(
            cpu_millis=int(cpu.to_integral_value(rounding="ROUND_CEILING")),
            memory_bytes=int(parse_quantity(amounts.get("memory", 0))),
            gpus=int(parse_quantity(amounts.get(GPU, 0))),
        )

    def __add__(self, other: Resources) -> Resources:
        return Resources(
            self.cpu_millis + other.cpu_millis, self.memory_bytes + other.memory_bytes, self.gpus + other.gpus
        )

    def __sub__(self, other: Resources) -> Resources:
        return Resources(
            self.cpu_millis - other.cpu_millis, self.memory_bytes - other.memory_bytes, self.gpus - other.gpus
        )

    def clamped(self) -> Resources:
        return Resources(max(0, self.cpu_millis), max(0, self.memory_bytes), max(0, self.gpus))


@dataclass(frozen=True)
class Capacity:
    allocatable: Resources
    free: Resources
    ready_nodes: int


def _condition(obj: Obj, type_: str) -> str | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return cond.get("status")
    return None


def node_usable(node: Obj) -> bool:
    """Ready, schedulable and without a NoSchedule/NoExecute taint (so not a kind control-plane)."""
    spec = node.get("spec") or {}
    if _condition(node, "Ready") != "True" or spec.get("unschedulable"):
        return False
    return not any(t.get("effect") in ("NoSchedule", "NoExecute") for t in spec.get("taints") or [])


def pod_requests(pod_spec: Obj) -> Resources:
    """A pod's requests; a container that gives only limits requests its limits, as API defaulting does."""
    total = Resources()
    for container in pod_spec.get("containers") or []:
        resources = container.get("resources") or {}
        total += Resources.from_quantities(
            {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
        )
    return total


def free_capacity(
    nodes: Iterable[Obj], pods: Iterable[Obj], active_jobs: Iterable[tuple[str, Resources]]
) -> Capacity:
    """allocatable of usable nodes - requests of their non-terminal pods - requests of active Jobs with no pod
    on such a node yet (waiting Jobs hold their place)."""
    usable = {n["metadata"]["name"]: n for n in nodes if node_usable(n)}
    allocatable = Resources()
    for node in usable.values():
        allocatable += Resources.from_quantities((node.get("status") or {}).get("allocatable"))
    used = Resources()
    placed_jobs: set[str] = set()
    for pod in pods:
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        if (pod.get("spec") or {}).get("nodeName") not in usable:
            continue
        used += pod_requests(pod.get("spec") or {})
        uid = (pod["metadata"].get("labels") or {}).get("batch.kubernetes.io/controller-uid")
        if uid:
            placed_jobs.add(uid)
    for uid, requests in active_jobs:
        if uid not in placed_jobs:
            used += requests
    return Capacity(allocatable, (allocatable - used).clamped(), len(usable))


# Configuration -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpokeConfig:
    cluster: str
    kube_context: str
    server: str


def load_spoke_configs(
    kubeconfig: str, contexts: tuple[str, ...] = (), in_cluster_name: str = "in-cluster"
) -> list[tuple[SpokeConfig, k8s.Configuration]]:
    """One (spoke, client configuration) per kube context; the context name is the cluster name."""
    if not kubeconfig and os.environ.get("KUBERNETES_SERVICE_HOST"):
        configuration = k8s.Configuration()
        k8s_config.load_incluster_config(client_configuration=configuration)
        return [(SpokeConfig(in_cluster_name, "", configuration.host), configuration)]
    path = kubeconfig or os.path.expanduser(k8s_config.KUBE_CONFIG_DEFAULT_LOCATION)
    if not kubeconfig and not os.path.exists(path):
        return []
    available, _ = k8s_config.list_kube_config_contexts(config_file=path)
    names = [c["name"] for c in available]
    missing = [name for name in contexts if name not in names]
    if missing:
        raise ValueError(f"contexts not in {path}: {', '.join(missing)}")
    spokes = []
    for name in contexts or names:
        configuration = k8s.Configuration()
        k8s_config.load_kube_config(
            config_file=path, context=name, client_configuration=configuration, persist_config=False
        )
        spokes.append((SpokeConfig(name, name, configuration.host), configuration))
    return spokes


# The client --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timeouts:
    connect: float = 2.0
    read: float = 5.0

    @property
    def pair(self) -> tuple[float, float]:
        return (self.connect, self.read)


class SpokeClient:
    """Blocking calls through the official client, returning the API server's JSON as dicts (no model
    deserialisation on the hot paths)."""

    def __init__(self, configuration: k8s.Configuration, connections: int = 8):
        # Retries are ours (with backoff and a breaker); urllib3 must not retry behind our back.
        configuration.retries = False
        configuration.connection_pool_maxsize = connections
        self.api_client = k8s.ApiClient(configuration)
        self.batch = k8s.BatchV1Api(self.api_client)
        self.core = k8s.CoreV1Api(self.api_client)
        self.version_api = k8s.VersionApi(self.api_client)

    @staticmethod
    def _json(response) -> Obj:
        return json.loads(response.data)

    def version(self, timeout: tuple[float, float]) -> Obj:
        return self._json(self.version_api.get_code(_preload_content=False, _request_timeout=timeout))

    def create_job(self, namespace: str, manifest: Obj, timeout: tuple[float, float]) -> Obj:
        body = k8s.V1Job.from_dict(manifest)
        return self._json(
            self.batch.create_namespaced_job(
                namespace, body, _preload_content=False, _request_timeout=timeout
            )
        )

    def read_job(self, namespace: str, name: str, timeout: tuple[float, float]) -> Obj:
        return self._json(
            self.batch.read_namespaced_job(name, namespace, _preload_content=False, _request_timeout=timeout)
        )

    def delete_job(self, namespace: str, name: str, uid: str, timeout: tuple[float, float]) -> Obj:
        options = k8s.V1DeleteOptions(
            propagation_policy="Background", preconditions=k8s.V1Preconditions(uid=uid)
        )
        return self._json(
            self.batch.delete_namespaced_job(
                name,
                namespace,
                body=options,
                propagation_policy="Background",
                _preload_content=False,
                _request_timeout=timeout,
            )
        )

    def list_jobs(self, namespace: str, selector: str, timeout: tuple[float, float]) -> Obj:
        return self._json(
            self.batch.list_namespaced_job(
                namespace, label_selector=selector, _preload_content=False, _request_timeout=timeout
            )
        )

    def watch_jobs(
        self,
        namespace: str,
        selector: str,
        resource_version: str,
        server_timeout: int,
        timeout: tuple[float, float],
    ):
        """The raw streaming response of a Job watch; read it line by line, close it when done."""
        return self.batch.list_namespaced_job(
            namespace,
            label_selector=selector,
            watch=True,
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=server_timeout,
            _preload_content=False,
            _request_timeout=timeout,
        )

    def list_nodes(self, timeout: tuple[float, float]) -> Obj:
        return self._json(self.core.list_node(_preload_content=False, _request_timeout=timeout))

    def list_pods(self, field_selector: str, timeout: tuple[float, float]) -> Obj:
        return self._json(
            self.core.list_pod_for_all_namespaces(
                field_selector=field_selector, _preload_content=False, _request_timeout=timeout
            )
        )

    def close(self) -> None:
        self.api_client.close()


# One spoke ---------------------------------------------------------------------------------------------------


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
        self.metrics.spoke_requests.labels(self.cluster, _outcome(exc)).inc()
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
        raise SpokeUnavailable(f"spoke {self.cluster} did not answer {what}: {_describe(last)}")

    async def capacity(self, active_jobs: Iterable[tuple[str, Resources]]) -> Capacity:
        nodes = await self.call("list nodes", self.client.list_nodes)
        pods = await self.call(
            "list pods", self.client.list_pods, "status.phase!=Succeeded,status.phase!=Failed"
        )
        return free_capacity(nodes.get("items") or [], pods.get("items") or [], active_jobs)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.client.close()


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "no attempt made"
    if isinstance(exc, k8s.ApiException):
        return f"HTTP {exc.status} {exc.reason}"
    return type(exc).__name__
