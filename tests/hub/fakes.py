"""Fakes of the carbon, optimizer and dispatcher gRPC contracts: real grpc.aio servers on ephemeral ports.

Each keeps what it was asked and lets a test script its answers (down, slow, stale, scripted placements,
job transitions pushed on the dispatcher's event stream).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import grpc

from caspian.v1 import (
    carbon_pb2,
    carbon_pb2_grpc,
    common_pb2,
    dispatcher_pb2,
    dispatcher_pb2_grpc,
    optimizer_pb2,
    optimizer_pb2_grpc,
)
from services.common.errors import DEADLINE_PASSED, REASON_KEY
from services.common.timeconv import duration_seconds, timestamp_seconds, to_duration, to_timestamp

HOUR = 3600.0


async def _serve(add, servicer) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server()
    add(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


# -- carbon ------------------------------------------------------------------------------------------------


class FakeCarbon(carbon_pb2_grpc.CarbonServiceServicer):
    """Intensity per zone from `profile[zone](unix_seconds)`, else a constant `levels[zone]`."""

    def __init__(self):
        self.levels: dict[str, float] = {"KR": 400.0, "JP-TK": 500.0, "CN": 600.0}
        self.profile: dict[str, Callable[[float], float]] = {}
        self.down = False
        self.stale = False
        # Zones answered NOT_FOUND, as the carbon service answers a zone it does not know.
        self.unknown_zones: set[str] = set()
        # Relative error spread per slot, by zone: spread[zone](slot index); none: no spread sent.
        self.spread: dict[str, Callable[[int], float]] = {}
        self.estimate: dict[str, Callable[[int], float]] = {}
        # What GetHistory reports, by zone, where it differs from the forecast (a forecast that is wrong).
        self.history_value: dict[str, Callable[[float], float]] = {}
        self.forecast_calls = 0
        self.history_calls = 0

    def value(self, zone: str, t: float) -> float:
        if zone in self.profile:
            return self.profile[zone](t)
        return self.levels.get(zone, 300.0)

    async def GetForecast(self, request, context):
        self.forecast_calls += 1
        if self.down:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "carbon is down")
        if request.zone in self.unknown_zones:
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"zone: unknown zone {request.zone!r}; known: KR, JP-TK, CN"
            )
        start = timestamp_seconds(request.start)
        slot = duration_seconds(request.slot)
        response = carbon_pb2.GetForecastResponse(zone=request.zone, error_model="perfect")
        for i in range(request.slots):
            t = start + i * slot
            response.points.add(
                zone=request.zone,
                time=to_timestamp(datetime.fromtimestamp(t, UTC)),
                duration=to_duration(slot),
                gco2_per_kwh=self.value(request.zone, t),
                aggregation=common_pb2.AGGREGATION_MEAN,
            )
            if request.zone in self.spread:
                response.relative_spread.append(self.spread[request.zone](i))
            if request.zone in self.estimate:
                response.estimate.append(self.estimate[request.zone](i))
        response.source.provider = "fake"
        response.source.stale = self.stale
        if self.stale:
            response.source.age.CopyFrom(to_duration(2 * HOUR))
        return response

    async def GetHistory(self, request, context):
        self.history_calls += 1
        if self.down:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "carbon is down")
        start = math.floor(timestamp_seconds(request.start) / HOUR) * HOUR
        end = timestamp_seconds(request.end)
        response = carbon_pb2.GetHistoryResponse(zone=request.zone)
        t = start
        while t < end:
            response.points.add(
                zone=request.zone,
                time=to_timestamp(datetime.fromtimestamp(t, UTC)),
                duration=to_duration(HOUR),
                gco2_per_kwh=self.history_value.get(request.zone, lambda t: self.value(request.zone, t))(t),
                aggregation=common_pb2.AGGREGATION_MEAN,
            )
            t += HOUR
        return response


# -- optimizer -----------------------------------------------------------------------------------------------


class FakeOptimizer(optimizer_pb2_grpc.OptimizerServiceServicer):
    """Each job at its first feasible slot on the allowed cluster with the lowest forecast in that window.

    mode: "ok", "down" (UNAVAILABLE), "slow" (waits for `release`), "no_solution".
    """

    def __init__(self):
        self.mode = "ok"
        self.requests: list[optimizer_pb2.SolveRequest] = []
        self.release = asyncio.Event()
        self.entered = asyncio.Event()

    async def Solve(self, request, context):
        self.requests.append(request)
        self.entered.set()
        if self.mode == "down":
            await context.abort(grpc.StatusCode.UNAVAILABLE, "optimizer is down")
        if self.mode == "slow":
            await self.release.wait()
        if self.mode == "no_solution":
            return optimizer_pb2.SolveResponse(status=optimizer_pb2.SOLVE_STATUS_NO_SOLUTION_IN_TIME)
        return place_first_fit(request)


def place_first_fit(request: optimizer_pb2.SolveRequest) -> optimizer_pb2.SolveResponse:
    grid_start = timestamp_seconds(request.grid.start)
    slot = duration_seconds(request.grid.slot)
    forecasts = {f.cluster: list(f.gco2_per_kwh) for f in request.forecasts}
    response = optimizer_pb2.SolveResponse(
        status=optimizer_pb2.SOLVE_STATUS_OPTIMAL,
        policy=request.options.policy or optimizer_pb2.POLICY_CASPIAN,
    )
    for job in request.jobs:
        runtime = duration_seconds(job.runtime)
        first = max(0, math.ceil((timestamp_seconds(job.earliest_start) - grid_start) / slot - 1e-9))
        length = max(1, math.ceil(runtime / slot - 1e-9))
        allowed = [
            c for c in request.clusters if not job.required_clusters or c.name in job.required_clusters
        ]
        allowed = [c for c in allowed if c.name not in job.excluded_clusters]
        placement = response.placements.add(job_id=job.id)
        if not allowed or first + length > request.grid.slots:
            placement.unplaced_reason = optimizer_pb2.UNPLACED_REASON_BEYOND_HORIZON
            continue
        if grid_start + first * slot + runtime > timestamp_seconds(job.deadline):
            placement.unplaced_reason = optimizer_pb2.UNPLACED_REASON_DEADLINE
            placement.reason = "deadline"
            continue

        def mean(c, first=first, length=length):
            values = forecasts.get(c.name, [0.0])
            window = values[first : first + length] or values[-1:]
            return sum(window) / len(window)

        best = min(allowed, key=lambda c: (mean(c), c.name))
        cores = job.resources.cpu_millis / 1000
        energy = cores * 10.0 * runtime / HOUR
        placement.placed = True
        placement.cluster = best.name
        placement.start_slot = first
        placement.start.CopyFrom(to_timestamp(datetime.fromtimestamp(grid_start + first * slot, UTC)))
        placement.energy_wh = energy
        placement.gco2 = energy / 1000 * mean(best)
        response.emissions_gco2 += placement.gco2
        response.agnostic_gco2 += energy / 1000 * max(mean(c) for c in allowed)
    response.placed_count = sum(1 for p in response.placements if p.placed)
    response.unplaced_count = len(response.placements) - response.placed_count
    return response


# -- dispatcher -----------------------------------------------------------------------------------------------


@dataclass
class FakeJob:
    app_wrapper_id: str
    cluster: str
    namespace: str
    job_name: str
    phase: int = dispatcher_pb2.JOB_PHASE_PENDING
    reason: str = ""
    start_time: datetime | None = None
    completion_time: datetime | None = None


@dataclass
class FakeSpoke:
    ready: bool = True
    reason: str = ""
    free: common_pb2.Resources = field(
        default_factory=lambda: common_pb2.Resources(cpu_millis=64000, memory_bytes=256 << 30, gpus=0)
    )


class FakeDispatcher(dispatcher_pb2_grpc.DispatcherServiceServicer):
    def __init__(self):
        self.spokes: dict[str, FakeSpoke] = {}
        self.jobs: dict[tuple[str, str], FakeJob] = {}
        self.dispatched: list[dispatcher_pb2.DispatchJobRequest] = []
        self.cancelled: list[dispatcher_pb2.CancelJobRequest] = []
        self.fail_dispatch = False
        self.refuse_deadline = False
        self.down = False
        self.streams: list[asyncio.Queue] = []
        self.connections = 0
        # The spokes it knows (None: any name). Like the dispatcher, it refuses a probe naming another.
        self.known: set[str] | None = None
        self.probes: list[list[str]] = []

    def spoke(self, name: str) -> FakeSpoke:
        return self.spokes.setdefault(name, FakeSpoke())

    async def ProbeClusters(self, request, context):
        if self.down:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "dispatcher is down")
        self.probes.append(list(request.clusters))
        if self.known is not None:
            for i, name in enumerate(request.clusters):
                if name not in self.known:
                    await context.abort(grpc.StatusCode.NOT_FOUND, f"clusters[{i}]: unknown spoke {name!r}")
        response = dispatcher_pb2.ProbeClustersResponse()
        for name in request.clusters or sorted(self.spokes):
            spoke = self.spoke(name)
            response.clusters.add(
                cluster=name, ready=spoke.ready, reason=spoke.reason, free=spoke.free, allocatable=spoke.free
            )
        return response

    async def DispatchJob(self, request, context):
        if self.down or self.fail_dispatch:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "dispatcher cannot reach the spoke")
        if self.refuse_deadline:
            # As the dispatcher refuses a Job whose deadline has passed: the reason in trailing metadata.
            self.dispatched.append(request)
            context.set_trailing_metadata(((REASON_KEY, DEADLINE_PASSED),))
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, "app_wrapper.deadline: the deadline has passed"
            )
        self.dispatched.append(request)
        # A spoke is known by its kube context, as the dispatcher knows it.
        spoke = request.kube_context or request.cluster
        key = (request.app_wrapper.id, spoke)
        created = key not in self.jobs
        if created:
            job = FakeJob(request.app_wrapper.id, spoke, request.namespace, f"job-{request.app_wrapper.id}")
            self.jobs[key] = job
            self._push_job(job)
        job = self.jobs[key]
        return dispatcher_pb2.DispatchJobResponse(
            job_name=job.job_name, namespace=job.namespace, cluster=job.cluster, created=created
        )

    async def CancelJob(self, request, context):
        if self.down:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "dispatcher is down")
        self.cancelled.append(request)
        job = self.jobs.pop((request.app_wrapper_id, request.kube_context or request.cluster), None)
        if job is not None:
            job.phase = dispatcher_pb2.JOB_PHASE_DELETED
            self._push_job(job)
        return dispatcher_pb2.CancelJobResponse(deleted=job is not None)

    async def ListSpokes(self, request, context):
        return dispatcher_pb2.ListSpokesResponse(
            spokes=[dispatcher_pb2.Spoke(cluster=n, kube_context=n) for n in sorted(self.spokes)]
        )

    async def WatchJobEvents(self, request, context):
        if self.down:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "dispatcher is down")
        queue: asyncio.Queue = asyncio.Queue()
        self.streams.append(queue)
        self.connections += 1
        try:
            for job in list(self.jobs.values()):
                yield dispatcher_pb2.WatchJobEventsResponse(job=_job_event(job))
            for name, spoke in sorted(self.spokes.items()):
                yield dispatcher_pb2.WatchJobEventsResponse(
                    cluster=dispatcher_pb2.ClusterEvent(cluster=name, ready=spoke.ready, reason=spoke.reason)
                )
            yield dispatcher_pb2.WatchJobEventsResponse(bookmark=True)
            while True:
                item = await queue.get()
                if item is None:
                    await context.abort(grpc.StatusCode.UNAVAILABLE, "stream broken by the test")
                yield item
        finally:
            self.streams.remove(queue)

    # -- test controls

    def _push(self, response: dispatcher_pb2.WatchJobEventsResponse) -> None:
        for queue in self.streams:
            queue.put_nowait(response)

    def _push_job(self, job: FakeJob) -> None:
        self._push(dispatcher_pb2.WatchJobEventsResponse(job=_job_event(job)))

    def set_job(
        self, app_wrapper_id: str, cluster: str, phase: int, *, at: datetime, reason: str = ""
    ) -> FakeJob:
        key = (app_wrapper_id, cluster)
        job = self.jobs.get(key) or FakeJob(app_wrapper_id, cluster, "default", f"job-{app_wrapper_id}")
        self.jobs[key] = job
        job.phase = phase
        job.reason = reason
        if phase == dispatcher_pb2.JOB_PHASE_RUNNING and job.start_time is None:
            job.start_time = at
        if phase in (dispatcher_pb2.JOB_PHASE_SUCCEEDED, dispatcher_pb2.JOB_PHASE_FAILED):
            job.start_time = job.start_time or at
            job.completion_time = at
        self._push_job(job)
        return job

    def set_spoke_ready(self, name: str, ready: bool, reason: str = "") -> None:
        spoke = self.spoke(name)
        spoke.ready, spoke.reason = ready, reason
        self._push(
            dispatcher_pb2.WatchJobEventsResponse(
                cluster=dispatcher_pb2.ClusterEvent(cluster=name, ready=ready, reason=reason)
            )
        )

    def break_streams(self) -> None:
        for queue in self.streams:
            queue.put_nowait(None)


def _job_event(job: FakeJob) -> dispatcher_pb2.JobEvent:
    event = dispatcher_pb2.JobEvent(
        app_wrapper_id=job.app_wrapper_id,
        cluster=job.cluster,
        namespace=job.namespace,
        job_name=job.job_name,
        phase=job.phase,
        reason=job.reason,
    )
    if job.start_time is not None:
        event.start_time.CopyFrom(to_timestamp(job.start_time))
    if job.completion_time is not None:
        event.completion_time.CopyFrom(to_timestamp(job.completion_time))
    return event


# -- all three ------------------------------------------------------------------------------------------------


@dataclass
class Fakes:
    carbon: FakeCarbon
    optimizer: FakeOptimizer
    dispatcher: FakeDispatcher
    servers: list[grpc.aio.Server]
    carbon_address: str
    optimizer_address: str
    dispatcher_address: str

    @classmethod
    async def start(cls) -> Fakes:
        carbon, optimizer, dispatcher = FakeCarbon(), FakeOptimizer(), FakeDispatcher()
        c, ca = await _serve(carbon_pb2_grpc.add_CarbonServiceServicer_to_server, carbon)
        o, oa = await _serve(optimizer_pb2_grpc.add_OptimizerServiceServicer_to_server, optimizer)
        d, da = await _serve(dispatcher_pb2_grpc.add_DispatcherServiceServicer_to_server, dispatcher)
        return cls(carbon, optimizer, dispatcher, [c, o, d], ca, oa, da)

    async def stop(self) -> None:
        self.optimizer.release.set()
        self.dispatcher.break_streams()
        for server in self.servers:
            await server.stop(0)


def at(start: datetime, seconds: float) -> datetime:
    return start + timedelta(seconds=seconds)
