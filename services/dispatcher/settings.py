"""Dispatcher settings, from CASPIAN_DISPATCHER_* variables."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.server import ServerSettings
from services.common.settings import load_settings, non_negative, port, positive, setting

PREFIX = "CASPIAN_DISPATCHER_"


def _names(value: tuple[str, ...]) -> None:
    if not value:
        raise ValueError("expected at least one name")


@dataclass(frozen=True)
class DispatcherSettings(ServerSettings):
    port: int = setting(50053, port, "gRPC port; 0 picks a free one")
    kubeconfig: str = setting(
        "",
        None,
        "kubeconfig with one context per spoke; empty: in-cluster config inside a pod, "
        "else ~/.kube/config if it exists, else no spokes",
    )
    contexts: tuple[str, ...] = setting((), None, "contexts to use as spokes, comma-separated; empty: all")
    in_cluster_name: str = setting("in-cluster", None, "spoke name under in-cluster config")
    namespaces: tuple[str, ...] = setting(
        ("caspian-jobs",), _names, "Job namespaces watched on every spoke; the first is the default"
    )
    request_timeout_seconds: float = setting(5.0, positive, "read timeout of one Kubernetes API call")
    connect_timeout_seconds: float = setting(2.0, positive, "connect timeout of one Kubernetes API call")
    retry_attempts: int = setting(4, positive, "tries of a call that fails with 5xx, 429 or a timeout")
    retry_base_seconds: float = setting(0.1, positive, "first retry delay; doubles per try, full jitter")
    retry_max_seconds: float = setting(2.0, positive, "largest retry delay")
    breaker_failures: int = setting(5, positive, "consecutive failed calls that open a spoke's circuit")
    breaker_open_seconds: float = setting(10.0, positive, "how long an open circuit fails calls at once")
    probe_interval_seconds: float = setting(
        2.0, positive, "a spoke silent this long gets a GET /version (a liveness probe)"
    )
    not_ready_after_seconds: float = setting(
        10.0, positive, "a spoke whose API has not answered for this long is NotReady"
    )
    watch_timeout_seconds: int = setting(
        300, positive, "server-side timeout of one watch request; the watch resumes from its resourceVersion"
    )
    backoff_limit: int = setting(2, non_negative, "Job spec.backoffLimit: pod retries before the Job fails")
    ttl_seconds_after_finished: int = setting(
        86_400, non_negative, "Job spec.ttlSecondsAfterFinished, in clock seconds: finished Jobs are removed"
    )
    threads_per_spoke: int = setting(8, positive, "threads (and HTTP connections) for one spoke's API calls")
    subscriber_queue: int = setting(
        10_000, positive, "events buffered per WatchJobEvents stream; a slower reader is disconnected"
    )


def load(env=None) -> DispatcherSettings:
    return load_settings(DispatcherSettings, PREFIX, env)
