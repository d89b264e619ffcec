"""The whole system as local processes for the fault scenarios, and what they read from it."""

from __future__ import annotations

import pathlib
from collections.abc import Mapping

import grpc

from caspian.v1 import hub_pb2, hub_pb2_grpc
from services.common.timeconv import from_timestamp
from services.launcher.stack import Stack, StackConfig


def scheduler_env(
    period_s: int = 900, slot_s: int = 900, horizon_slots: int = 96, debounce_s: int = 60
) -> dict:
    return {
        "CASPIAN_HUB_SCHEDULE_PERIOD_SECONDS": str(period_s),
        "CASPIAN_HUB_DEBOUNCE_SECONDS": str(debounce_s),
        "CASPIAN_HUB_DEBOUNCE_MAX_SECONDS": str(5 * debounce_s),
        "CASPIAN_HUB_SLOT_SECONDS": str(slot_s),
        "CASPIAN_HUB_HORIZON_SLOTS": str(horizon_slots),
        "CASPIAN_HUB_SOLVE_TIME_LIMIT_SECONDS": "10",
        "CASPIAN_HUB_WATCH_BACKOFF_INITIAL_SECONDS": "0.2",
        "CASPIAN_HUB_WATCH_BACKOFF_MAX_SECONDS": "2",
        "CASPIAN_HUB_LOG_LEVEL": "INFO",
    }


def start_stack(
    workdir: pathlib.Path,
    *,
    speedup: float,
    hub: Mapping[str, str] | None = None,
    dispatcher: Mapping[str, str] | None = None,
    carbon: Mapping[str, str] | None = None,
    optimizer: Mapping[str, str] | None = None,
    optimizer_replicas: int = 1,
    **config,
) -> Stack:
    env = {
        "hub": {**scheduler_env(), **(hub or {})},
        # Finished Jobs stay on the spokes for the whole test, so the spokes can be compared with the hub.
        "dispatcher": {
            "CASPIAN_DISPATCHER_TTL_SECONDS_AFTER_FINISHED": str(30 * 86400),
            **(dispatcher or {}),
        },
        "carbon": dict(carbon or {}),
        "optimizer": dict(optimizer or {}),
    }
    return Stack(
        StackConfig(
            workdir=workdir,
            clock_speedup=speedup,
            optimizer_replicas=optimizer_replicas,
            env=env,
            **config,
        )
    ).start()


def spoke_urls(stack: Stack) -> dict[str, str]:
    return {name: f"http://{proc.address}" for name, proc in stack.spokes.items()}


def hub_stub(channel: grpc.Channel) -> hub_pb2_grpc.HubServiceStub:
    return hub_pb2_grpc.HubServiceStub(channel)


def hub_now(stub: hub_pb2_grpc.HubServiceStub, metadata: tuple = ()):
    return from_timestamp(stub.GetStats(hub_pb2.GetStatsRequest(), timeout=10, metadata=metadata).now)


def trigger(stub: hub_pb2_grpc.HubServiceStub, metadata: tuple = ()) -> hub_pb2.CycleSummary:
    return stub.TriggerSchedule(hub_pb2.TriggerScheduleRequest(), timeout=60, metadata=metadata).summary


def clusters_by_name(stub: hub_pb2_grpc.HubServiceStub, metadata: tuple = ()) -> dict:
    return {
        c.name: c
        for c in stub.ListClusters(hub_pb2.ListClustersRequest(), timeout=10, metadata=metadata).clusters
    }


def submit_bulk(stub: hub_pb2_grpc.HubServiceStub, messages, metadata: tuple = ()) -> None:
    """One SubmitAppWrappers stream: every AppWrapper is durable before any cycle can see only part of them."""
    items = [hub_pb2.SubmitAppWrapperRequest(app_wrapper=m) for m in messages]
    batches = [hub_pb2.SubmitAppWrappersRequest(items=items[i : i + 500]) for i in range(0, len(items), 500)]
    response = stub.SubmitAppWrappers(iter(batches), timeout=60, metadata=metadata)
    if response.rejected:
        raise AssertionError(
            f"{response.rejected} refused: {[r.error_message for r in response.results][:3]}"
        )


def phases_of(stub: hub_pb2_grpc.HubServiceStub, ids, metadata: tuple = ()) -> dict[str, int]:
    return {
        i: stub.GetAppWrapper(
            hub_pb2.GetAppWrapperRequest(id=i), timeout=10, metadata=metadata
        ).app_wrapper.status.phase
        for i in ids
    }
