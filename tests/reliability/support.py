"""What the reliability scenarios share: sizes, polling, real processes, metrics, /proc figures, spoke Jobs."""

from __future__ import annotations

import asyncio
import os
import pathlib
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import grpc
import httpx
from kubernetes import client as k8s
from kubernetes import watch as k8s_watch
from prometheus_client.parser import text_string_to_metric_families

from caspian.v1 import common_pb2, hub_pb2, hub_pb2_grpc
from caspianctl.specs import cluster_from_document, load_documents
from services.common.timeconv import to_duration, to_timestamp
from services.launcher.procs import ServiceProcess
from services.launcher.stack import CLUSTERS_FILE

# `make reliability` sets RELIABILITY_FULL=1: the sizes the report quotes. Inside `make test` the same scenarios
# run smaller, to keep the suite fast.
FULL = os.environ.get("RELIABILITY_FULL", "").lower() in ("1", "true", "yes")
GIB = 1 << 30
NAMESPACE = "caspian-jobs"
MANAGED = "app.kubernetes.io/managed-by=caspian"
AW_LABEL = "caspian.io/appwrapper-id"
UNREACHABLE = "127.0.0.1:1"  # connection refused at once

Phase = common_pb2.AppWrapperPhase
TERMINAL = frozenset(
    {
        Phase.APP_WRAPPER_PHASE_SUCCEEDED,
        Phase.APP_WRAPPER_PHASE_FAILED,
        Phase.APP_WRAPPER_PHASE_CANCELLED,
        Phase.APP_WRAPPER_PHASE_UNSCHEDULABLE,
    }
)


def scale(lean: int, full: int) -> int:
    return full if FULL else lean


def phase_name(phase: int) -> str:
    return Phase.Name(phase).removeprefix("APP_WRAPPER_PHASE_")


# -- polling --------------------------------------------------------------------------------------------


def wait_until(condition: Callable[[], Any], within: float, what: str, interval: float = 0.05) -> Any:
    """Poll `condition` until it returns something truthy; fail naming `what` after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:g} s waiting for {what}")
        time.sleep(interval)


async def await_until(
    condition: Callable[[], Awaitable[Any]], within: float, what: str, interval: float = 0.1
) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = await condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:g} s waiting for {what}")
        await asyncio.sleep(interval)


# -- AppWrappers ----------------------------------------------------------------------------------------


def app_wrapper(
    *,
    id: str = "",
    now: datetime,
    runtime_s: float = 600,
    cpu_millis: int = 500,
    memory_bytes: int = GIB,
    start_in_s: float = 0,
    slack_s: float = 6 * 3600,
    tenant: str = "",
    namespace: str = NAMESPACE,
    labels: dict[str, str] | None = None,
) -> common_pb2.AppWrapper:
    earliest = now + timedelta(seconds=start_in_s)
    message = common_pb2.AppWrapper(
        id=id,
        tenant=tenant,
        namespace=namespace,
        template=common_pb2.JobTemplate(
            image="busybox:1.36",
            command=["sh", "-c", "sleep 1"],
            resources=common_pb2.Resources(cpu_millis=cpu_millis, memory_bytes=memory_bytes),
            expected_runtime=to_duration(runtime_s),
        ),
        labels=labels or {},
    )
    if start_in_s:
        message.earliest_start.CopyFrom(to_timestamp(earliest))
    message.deadline.CopyFrom(to_timestamp(earliest + timedelta(seconds=runtime_s + slack_s)))
    return message


async def list_all(
    stub: hub_pb2_grpc.HubServiceStub, metadata: tuple = (), **filters
) -> list[common_pb2.AppWrapper]:
    items: list[common_pb2.AppWrapper] = []
    token = ""
    while True:
        page = await stub.ListAppWrappers(
            hub_pb2.ListAppWrappersRequest(page_size=1000, page_token=token, **filters),
            timeout=30,
            metadata=metadata,
        )
        items.extend(page.app_wrappers)
        token = page.next_page_token
        if not token:
            return items


def list_all_blocking(channel: grpc.Channel, metadata: tuple = (), **filters) -> list[common_pb2.AppWrapper]:
    stub = hub_pb2_grpc.HubServiceStub(channel)
    items: list[common_pb2.AppWrapper] = []
    token = ""
    while True:
        page = stub.ListAppWrappers(
            hub_pb2.ListAppWrappersRequest(page_size=1000, page_token=token, **filters),
            timeout=30,
            metadata=metadata,
        )
        items.extend(page.app_wrappers)
        token = page.next_page_token
        if not token:
            return items


def cluster_infos() -> list[common_pb2.ClusterInfo]:
    """The three default spokes as `make run` registers them."""
    return [cluster_from_document(doc) for doc in load_documents(str(CLUSTERS_FILE), ("items", "clusters"))]


# -- a hub on its own ------------------------------------------------------------------------------------


@dataclass
class HubProcess:
    """A hub process whose carbon, optimizer and dispatcher are unreachable: the door, the store and the API,
    without a scheduling loop. Restarts keep the port and the database."""

    workdir: pathlib.Path
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: ServiceProcess | None = None
    retired: list[ServiceProcess] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        return {
            "CASPIAN_HUB_PORT": "0",
            "CASPIAN_HUB_METRICS_PORT": "0",
            "CASPIAN_HUB_DB_PATH": str(self.workdir / "hub.db"),
            "CASPIAN_HUB_CARBON_ADDRESS": UNREACHABLE,
            "CASPIAN_HUB_OPTIMIZER_ADDRESS": UNREACHABLE,
            "CASPIAN_HUB_DISPATCHER_ADDRESS": UNREACHABLE,
            "CASPIAN_HUB_SCHEDULER_ENABLED": "false",
            "CASPIAN_HUB_CARBON_TIMEOUT_SECONDS": "1",
            "CASPIAN_HUB_OPTIMIZER_TIMEOUT_SECONDS": "1",
            "CASPIAN_HUB_DISPATCHER_TIMEOUT_SECONDS": "1",
            "CASPIAN_HUB_WATCH_BACKOFF_INITIAL_SECONDS": "1",
            "CASPIAN_HUB_WATCH_BACKOFF_MAX_SECONDS": "30",
            "CASPIAN_HUB_SHUTDOWN_GRACE_SECONDS": "1",
            **self.extra_env,
        }

    def start(self) -> HubProcess:
        env = self.env()
        if self.proc is not None:
            env["CASPIAN_HUB_PORT"] = str(self.proc.port)
            self.retired.append(self.proc)
        self.proc = ServiceProcess("services.hub", env=env).start()
        return self

    @property
    def address(self) -> str:
        assert self.proc is not None
        return self.proc.address

    def alive(self) -> bool:
        return self.proc is not None and self.proc.proc is not None and self.proc.proc.poll() is None

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()

    def stop(self) -> int | None:
        return None if self.proc is None else self.proc.terminate()

    def register_clusters(self, metadata: tuple = ()) -> None:
        with grpc.insecure_channel(self.address) as channel:
            stub = hub_pb2_grpc.HubServiceStub(channel)
            for info in cluster_infos():
                stub.RegisterCluster(
                    hub_pb2.RegisterClusterRequest(cluster=info), timeout=10, metadata=metadata
                )


# -- metrics and /proc ----------------------------------------------------------------------------------


def scrape(metrics_address: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a /metrics page, keyed by (name, sorted labels)."""
    text = httpx.get(f"http://{metrics_address}/metrics", timeout=10).text
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def metric(metrics_address: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels` (0 when there are none)."""
    wanted = set(labels.items())
    return sum(
        value
        for (sample, sample_labels), value in scrape(metrics_address).items()
        if sample == name and wanted <= set(sample_labels)
    )


def rss_bytes(pid: int) -> int:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise ValueError(f"no VmRSS for {pid}")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


# -- Jobs on the spokes ---------------------------------------------------------------------------------


def batch_api(url: str) -> k8s.BatchV1Api:
    configuration = k8s.Configuration(host=url)
    configuration.retries = 0  # a spoke that is down is expected here: fail at once, the caller retries
    return k8s.BatchV1Api(k8s.ApiClient(configuration))


def spoke_jobs(spoke_urls: dict[str, str]) -> dict[str, list[k8s.V1Job]]:
    """The managed Jobs on every spoke, read with the official kubernetes client."""
    found = {}
    for name, url in spoke_urls.items():
        api = batch_api(url)
        found[name] = api.list_namespaced_job(NAMESPACE, label_selector=MANAGED, _request_timeout=10).items
        api.api_client.close()
    return found


class JobRecorder:
    """Records every managed Job ever created on one spoke (by uid), with a list then a watch of the spoke's
    API, re-listing when the watch breaks: a Job created and deleted again still counts."""

    def __init__(self, name: str, url: str):
        self.name = name
        self.url = url
        self.created: dict[str, str] = {}  # uid -> AppWrapper id
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"jobs-{name}", daemon=True)

    def start(self) -> JobRecorder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def count(self) -> int:
        with self._lock:
            return len(self.created)

    def snapshot(self) -> dict[str, str]:
        with self._lock:
            return dict(self.created)

    def _note(self, job: k8s.V1Job) -> None:
        labels = job.metadata.labels or {}
        with self._lock:
            self.created.setdefault(job.metadata.uid, labels.get(AW_LABEL, ""))

    def _run(self) -> None:
        api = batch_api(self.url)
        while not self._stop.is_set():
            try:
                listed = api.list_namespaced_job(NAMESPACE, label_selector=MANAGED, _request_timeout=5)
                for job in listed.items:
                    self._note(job)
                version = listed.metadata.resource_version
                while not self._stop.is_set():
                    stream = k8s_watch.Watch().stream(
                        api.list_namespaced_job,
                        NAMESPACE,
                        label_selector=MANAGED,
                        resource_version=version,
                        timeout_seconds=1,
                        _request_timeout=5,
                    )
                    for event in stream:
                        if event["type"] == "ERROR":
                            raise RuntimeError("watch expired")
                        job = event["object"]
                        self._note(job)
                        version = job.metadata.resource_version
            except Exception:  # noqa: BLE001 - the spoke is down or the watch expired: list again
                self._stop.wait(0.2)
        api.api_client.close()


def record_jobs(spoke_urls: dict[str, str]) -> list[JobRecorder]:
    return [JobRecorder(name, url).start() for name, url in spoke_urls.items()]


def created_jobs(recorders: Iterable[JobRecorder]) -> list[tuple[str, str, str]]:
    """(spoke, uid, AppWrapper id) of every Job the recorders saw created."""
    return [(r.name, uid, aw) for r in recorders for uid, aw in r.snapshot().items()]
