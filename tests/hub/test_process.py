"""The hub as a real process: killed and restarted on the same database, nothing acknowledged is lost and
planned work carries on."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import grpc
import pytest

from caspian.v1 import common_pb2, dispatcher_pb2, hub_pb2, hub_pb2_grpc
from services.common.clock import SimClock
from services.common.timeconv import to_timestamp
from services.launcher.procs import ServiceProcess
from tests.hub.conftest import CLUSTERS, START, app_wrapper, cluster_info
from tests.support.polling import wait_for

Phase = common_pb2.AppWrapperPhase
SPEEDUP = 600.0  # ten simulated minutes per real second


@pytest.fixture
def processes():
    started: list[ServiceProcess] = []
    yield started
    for proc in started:
        proc.kill()


async def start_hub(processes, env) -> tuple[ServiceProcess, grpc.aio.Channel]:
    proc = await asyncio.to_thread(ServiceProcess("services.hub", env=env).start)
    processes.append(proc)
    return proc, grpc.aio.insecure_channel(proc.address)


async def test_restart_keeps_every_acknowledged_app_wrapper_and_carries_on(tmp_path, fakes, processes):
    anchor = time.time()
    clock = SimClock(START, SPEEDUP, anchor)
    env = {
        "CASPIAN_HUB_PORT": "0",
        "CASPIAN_HUB_METRICS_PORT": "-1",
        "CASPIAN_HUB_DB_PATH": str(tmp_path / "hub.db"),
        "CASPIAN_HUB_CARBON_ADDRESS": fakes.carbon_address,
        "CASPIAN_HUB_OPTIMIZER_ADDRESS": fakes.optimizer_address,
        "CASPIAN_HUB_DISPATCHER_ADDRESS": fakes.dispatcher_address,
        "CASPIAN_HUB_SCHEDULE_PERIOD_SECONDS": "86400",
        "CASPIAN_HUB_DEBOUNCE_SECONDS": "0",
        "CASPIAN_HUB_WATCH_BACKOFF_INITIAL_SECONDS": "0.1",
        "CASPIAN_HUB_LOG_LEVEL": "WARNING",
        "CASPIAN_CLOCK_MODE": "sim",
        "CASPIAN_CLOCK_START": "2023-06-01T00:00:00Z",
        "CASPIAN_CLOCK_SPEEDUP": str(SPEEDUP),
        "CASPIAN_CLOCK_ANCHOR": repr(anchor),
    }
    proc, channel = await start_hub(processes, env)
    stub = hub_pb2_grpc.HubServiceStub(channel)
    for name, zone in CLUSTERS:
        await stub.RegisterCluster(
            hub_pb2.RegisterClusterRequest(cluster=cluster_info(name, zone)), timeout=10
        )

    later = to_timestamp(clock.now() + timedelta(hours=1))
    for i in range(5):
        aw = app_wrapper(clock, id=f"now-{i}", deadline_in=24 * 3600)
        await stub.SubmitAppWrapper(hub_pb2.SubmitAppWrapperRequest(app_wrapper=aw), timeout=10)
    bulk = [
        hub_pb2.SubmitAppWrapperRequest(
            app_wrapper=app_wrapper(clock, id=f"later-{i}", earliest_start=later, deadline_in=24 * 3600)
        )
        for i in range(300)
    ]
    response = await stub.SubmitAppWrappers(
        iter([hub_pb2.SubmitAppWrappersRequest(items=bulk[i : i + 100]) for i in range(0, 300, 100)]),
        timeout=30,
    )
    assert response.accepted == 300
    summary = (await stub.TriggerSchedule(hub_pb2.TriggerScheduleRequest(), timeout=30)).summary
    assert summary.planned == 305

    # Jobs start on slot boundaries: the ones due now go out at the next one.
    async def now_jobs_dispatched() -> bool:
        return sum(a.status.phase == Phase.APP_WRAPPER_PHASE_DISPATCHING for a in await list_all(stub)) == 5

    await wait_for(now_jobs_dispatched, within=20, what="now-jobs dispatched")
    before = {a.id: a for a in await list_all(stub)}
    assert len(before) == 305
    assert sum(a.status.phase == Phase.APP_WRAPPER_PHASE_DISPATCHING for a in before.values()) == 5
    assert sum(a.status.phase == Phase.APP_WRAPPER_PHASE_SCHEDULED for a in before.values()) == 300

    # Killed without a chance to flush anything.
    await channel.close()
    await asyncio.to_thread(proc.kill)
    proc, channel = await start_hub(processes, env)
    stub = hub_pb2_grpc.HubServiceStub(channel)
    try:
        after = {a.id: a for a in await list_all(stub)}
        assert after.keys() == before.keys()
        for app_wrapper_id, old in before.items():
            new = after[app_wrapper_id]
            assert new.status.target_cluster == old.status.target_cluster
            assert new.revision >= old.revision
        assert len((await stub.ListClusters(hub_pb2.ListClustersRequest(), timeout=10)).clusters) == 3

        # Dispatching ones carry on: the restarted hub follows their Jobs without sending them again.
        fakes.dispatcher.set_job("now-0", "carbon-kr", dispatcher_pb2.JOB_PHASE_RUNNING, at=clock.now())

        async def running() -> bool:
            got = await stub.GetAppWrapper(hub_pb2.GetAppWrapperRequest(id="now-0"), timeout=10)
            return got.app_wrapper.status.phase == Phase.APP_WRAPPER_PHASE_RUNNING

        await wait_for(running, within=20, what="now-0 Running after the restart")
        assert [d.app_wrapper.id for d in fakes.dispatcher.dispatched].count("now-0") == 1

        # Scheduled ones carry on: their gates open at their planned start (an hour of simulated time).
        async def all_dispatched() -> bool:
            later = [a for a in await list_all(stub) if a.id.startswith("later-")]
            return all(
                a.status.phase == Phase.APP_WRAPPER_PHASE_DISPATCHING and a.status.job_name for a in later
            )

        await wait_for(all_dispatched, within=40, what="later jobs dispatched after the restart")
        ids = [d.app_wrapper.id for d in fakes.dispatcher.dispatched]
        assert sorted(i for i in ids if i.startswith("later-")) == sorted(f"later-{i}" for i in range(300))
    finally:
        await channel.close()
    assert proc.terminate() == 0


async def list_all(stub) -> list[common_pb2.AppWrapper]:
    items, token = [], ""
    while True:
        page = await stub.ListAppWrappers(
            hub_pb2.ListAppWrappersRequest(page_size=1000, page_token=token), timeout=10
        )
        items.extend(page.app_wrappers)
        token = page.next_page_token
        if not token:
            return items
