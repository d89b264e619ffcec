"""Interruptible jobs end to end: a hub (over real gRPC) plans with the real optimizer process, dispatches
through the real dispatcher process to a simulated spoke that speaks the Kubernetes API, all on one simulated
clock. A job that must pause through a dirty peak is dispatched, suspended, resumed and succeeds, its carbon
is the intensity integrated over the segments it ran, a plain job beside it is never suspended, and a hub
restarted while the job is paused carries on from its stored state. Carbon is the in-process hourly stand-in
(a known peak), so the expected figure is exact."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from prometheus_client import CollectorRegistry

from caspian.v1 import common_pb2, hub_pb2, hub_pb2_grpc
from clusters.simulator.kubeconfig import write_kubeconfig
from services.common.clock import SimClock
from services.common.timeconv import timestamp_seconds, to_duration, to_timestamp
from services.hub.accounting import job_energy_wh
from services.hub.inprocess import HourlyCarbon
from services.hub.server import HubDeps, create_hub
from services.hub.settings import HubSettings
from services.launcher.procs import ServiceProcess

Phase = common_pb2.AppWrapperPhase
START = datetime(2023, 6, 1, tzinfo=UTC)
SPEEDUP = 600.0  # simulated seconds per real second
HOUR = 3600.0
GIB = 1 << 30
OVERHEAD = 300.0


class Peak:
    """Hourly intensity: clean, except a two-hour dirty peak starting two hours after `base` (set at submit)."""

    def __init__(self) -> None:
        self.base = math.inf

    def __call__(self, zone: str, hour_start: float) -> float:
        return 900.0 if self.base + 2 * HOUR <= hour_start < self.base + 4 * HOUR else 100.0

    def integral(self, t0: float, t1: float) -> float:
        """gCO2/kWh x seconds over [t0, t1)."""
        total, t = 0.0, t0
        while t < t1:
            edge = min(t1, t - t % HOUR + HOUR)
            total += self(zone="KR", hour_start=t - t % HOUR) * (edge - t)
            t = edge
        return total


@pytest.fixture
def processes(tmp_path):
    env = {
        "CASPIAN_CLOCK_MODE": "sim",
        "CASPIAN_CLOCK_START": START.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "CASPIAN_CLOCK_SPEEDUP": str(SPEEDUP),
        "CASPIAN_CLOCK_ANCHOR": str(time.time()),
    }
    started: list[ServiceProcess] = []
    try:
        spoke = ServiceProcess(
            "clusters.simulator", env=env, args=("--name", "carbon-kr", "--port", "0")
        ).start()
        started.append(spoke)
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", {"carbon-kr": f"http://{spoke.address}"})
        dispatcher_env = {
            **env,
            "CASPIAN_DISPATCHER_PORT": "0",
            "CASPIAN_DISPATCHER_METRICS_PORT": "-1",
            "CASPIAN_DISPATCHER_KUBECONFIG": kubeconfig,
            "CASPIAN_DISPATCHER_REQUEST_TIMEOUT_SECONDS": "20",
            "CASPIAN_DISPATCHER_SHUTDOWN_GRACE_SECONDS": "0",
        }
        dispatcher = ServiceProcess("services.dispatcher", env=dispatcher_env).start()
        started.append(dispatcher)
        optimizer = ServiceProcess(
            "services.optimizer",
            env={**env, "CASPIAN_OPTIMIZER_PORT": "0", "CASPIAN_OPTIMIZER_METRICS_PORT": "-1"},
        ).start()
        started.append(optimizer)
        clock = SimClock(START, SPEEDUP, anchor=float(env["CASPIAN_CLOCK_ANCHOR"]))
        yield clock, dispatcher.address, optimizer.address
    finally:
        for proc in reversed(started):
            proc.terminate()


def settings(tmp_path, dispatcher: str, optimizer: str) -> HubSettings:
    return HubSettings(
        port=0,
        metrics_port=-1,
        shutdown_grace_seconds=0.5,
        db_path=str(tmp_path / "hub.db"),
        carbon_address="127.0.0.1:1",  # unused: carbon is the in-process stand-in
        optimizer_address=optimizer,
        dispatcher_address=dispatcher,
        optimizer_timeout_seconds=20.0,
        dispatcher_timeout_seconds=10.0,
        scheduler_enabled=True,
        schedule_period_seconds=1800.0,
        watch_backoff_initial_seconds=0.05,
        watch_backoff_max_seconds=0.5,
        slot_seconds=900,
        horizon_slots=96,
    )


async def start_hub(hub_settings: HubSettings, clock: SimClock, peak: Peak):
    deps = HubDeps(clock=clock, carbon=HourlyCarbon(peak))
    server, hub = await create_hub(replace(hub_settings), CollectorRegistry(), deps)
    await server.start()
    channel = grpc.aio.insecure_channel(server.address)
    return server, hub, channel, hub_pb2_grpc.HubServiceStub(channel)


def job(job_id: str, clock: SimClock, base: float, interruptible: bool) -> common_pb2.AppWrapper:
    message = common_pb2.AppWrapper(
        id=job_id,
        tenant="team-a",
        template=common_pb2.JobTemplate(
            image="ghcr.io/caspian/sleep:1.0",
            resources=common_pb2.Resources(cpu_millis=1000, memory_bytes=GIB),
            expected_runtime=to_duration(4 * HOUR if interruptible else HOUR),
        ),
        earliest_start=to_timestamp(datetime.fromtimestamp(base, UTC)),
        deadline=to_timestamp(datetime.fromtimestamp(base + 7 * HOUR, UTC)),
    )
    if interruptible:
        message.interruptible.resume_overhead.CopyFrom(to_duration(OVERHEAD))
        message.interruptible.min_segment.CopyFrom(to_duration(HOUR))
    return message


async def until(stub, job_id: str, done, what: str, within: float = 150.0) -> common_pb2.AppWrapper:
    deadline = time.monotonic() + within
    while True:
        aw = (await stub.GetAppWrapper(hub_pb2.GetAppWrapperRequest(id=job_id), timeout=10)).app_wrapper
        if done(aw):
            return aw
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {aw.status}"
        await asyncio.sleep(0.1)


async def test_an_interruptible_job_pauses_through_the_peak_survives_a_hub_restart_and_is_accounted(
    processes, tmp_path
):
    clock, dispatcher, optimizer = processes
    hub_settings = settings(tmp_path, dispatcher, optimizer)
    peak = Peak()
    # The peak is fixed before the hub starts: its first cycle's forecast (which a preview in the same slot
    # reuses) must already see it.
    now = clock.now().timestamp()
    peak.base = now - now % HOUR + HOUR  # the next hour: clean for two hours, dirty for two, clean after
    server, hub, channel, stub = await start_hub(hub_settings, clock, peak)
    try:
        await stub.RegisterCluster(
            hub_pb2.RegisterClusterRequest(
                cluster=common_pb2.ClusterInfo(
                    name="carbon-kr",
                    zone="KR",
                    kube_context="carbon-kr",
                    capacity=common_pb2.Resources(cpu_millis=8000, memory_bytes=32 * GIB),
                    power=common_pb2.PowerModel(watts_per_core=10.0, pue=1.0),
                )
            ),
            timeout=10,
        )
        # The preview (it writes nothing) shows the segments and what pausing saves over one piece.
        preview = await stub.PreviewSchedule(
            hub_pb2.PreviewScheduleRequest(app_wrapper=job("pausing", clock, peak.base, True)), timeout=30
        )
        assert preview.placeable and len(preview.segments) >= 2, preview
        assert all(s.cluster == "carbon-kr" for s in preview.segments)
        assert preview.planned_start == preview.segments[0].start
        assert preview.one_piece_gco2 > preview.planned_gco2 > 0
        assert preview.interruptible_saving_gco2 == pytest.approx(
            preview.one_piece_gco2 - preview.planned_gco2
        )
        plain_preview = await stub.PreviewSchedule(
            hub_pb2.PreviewScheduleRequest(app_wrapper=job("plain", clock, peak.base, False)), timeout=30
        )
        assert plain_preview.placeable and not plain_preview.segments
        assert plain_preview.interruptible_saving_gco2 == 0.0
        assert plain_preview.one_piece_gco2 == pytest.approx(plain_preview.planned_gco2)
        listed = await stub.ListAppWrappers(hub_pb2.ListAppWrappersRequest(), timeout=10)
        assert listed.total_size == 0
        for aw in (job("pausing", clock, peak.base, True), job("plain", clock, peak.base, False)):
            await stub.SubmitAppWrapper(hub_pb2.SubmitAppWrapperRequest(app_wrapper=aw), timeout=10)

        planned = await until(
            stub, "pausing", lambda a: len(a.status.planned_segments) >= 2, "a plan in segments"
        )
        for segment in planned.status.planned_segments:
            a, b = timestamp_seconds(segment.start), timestamp_seconds(segment.end)
            assert b <= peak.base + 2 * HOUR or a >= peak.base + 4 * HOUR, planned.status.planned_segments
        await until(stub, "pausing", lambda a: a.status.phase == Phase.APP_WRAPPER_PHASE_RUNNING, "running")
        paused = await until(
            stub,
            "pausing",
            lambda a: a.status.phase == Phase.APP_WRAPPER_PHASE_SUSPENDED and a.status.pauses >= 1,
            "suspended by the spoke",
        )
        assert len(paused.status.run_segments) == 1 and paused.status.progress.seconds > 0
    finally:
        await channel.close()
        await server.stop(0)

    # A new hub on the same database, mid-pause: it resumes the job from its stored progress.
    server, hub, channel, stub = await start_hub(hub_settings, clock, peak)
    try:
        done = await until(
            stub,
            "pausing",
            lambda a: a.status.phase == Phase.APP_WRAPPER_PHASE_SUCCEEDED and a.status.carbon.actual_gco2 > 0,
            "succeeded and accounted",
        )
        plain = await until(
            stub,
            "plain",
            lambda a: a.status.phase == Phase.APP_WRAPPER_PHASE_SUCCEEDED and a.status.carbon.actual_gco2 > 0,
            "the plain job succeeded and accounted",
        )
    finally:
        await channel.close()
        await server.stop(0)

    status = done.status
    ran = [(timestamp_seconds(s.start), timestamp_seconds(s.end)) for s in status.run_segments]
    assert len(ran) >= 2 and all(s.HasField("end") for s in status.run_segments), status
    assert status.pauses >= 1
    assert status.progress.seconds == pytest.approx(4 * HOUR, abs=1)
    info = common_pb2.ClusterInfo(
        name="carbon-kr",
        zone="KR",
        capacity=common_pb2.Resources(cpu_millis=8000, memory_bytes=32 * GIB),
        power=common_pb2.PowerModel(watts_per_core=10.0, pue=1.0),
    )
    resources = done.template.resources
    expected = sum(
        job_energy_wh(resources, b - a, info) / 1000.0 * peak.integral(a, b) / (b - a)
        for a, b in ran
        if b > a
    )
    assert status.carbon.actual_gco2 == pytest.approx(expected, rel=1e-6)
    # It ran in the clean hours (bar the seconds a suspend takes): it emits less than the one-piece run.
    assert status.carbon.actual_gco2 < status.carbon.counterfactual_gco2
    # The plain job ran in one piece, never suspended.
    assert plain.status.pauses == 0 and not plain.status.run_segments and not plain.status.planned_segments
    assert timedelta(
        seconds=timestamp_seconds(plain.status.finished_at) - timestamp_seconds(plain.status.started_at)
    ) >= timedelta(hours=1)
