"""One policy over one instance: the real hub, in-process, on a simulated clock. No network, no sleeping.

The hub (`services.hub.hub.Hub`: its SQLite store in a temporary directory, door checks, cluster directory,
`Scheduler.tick()` and `JobStatusReconciler`) runs with in-process ports: the replayed carbon traces
(`carbon.TraceCarbon`), the optimizer's domain solve (`optimizer.InProcessOptimizer`) and a simulated
dispatcher (`dispatcher.SimDispatcher`). Its loop is enabled, so the hub pokes the loop's debounce as it
would the running loop (arrivals, cluster changes, requeues), but its task is not started: this event loop
stands in for `ScheduleLoop`, asks the loop's own `next_wake` what is due, and moves a `ManualClock` from
event to event, in time order:

1. a Job reaching its runtime: Succeeded goes through the hub's reconciler (as from WatchJobEvents);
2. an arrival: the AppWrapper is submitted at its arrival time (`Hub.submit_many`, door checks included);
3. a slot boundary: one `Scheduler.tick()` (plan, open the gates of jobs whose planned start has come,
   account finished jobs); the Jobs the gates started report Running through the reconciler.
4. the hub's debounce trigger: a cycle `debounce_seconds` (5 s) after a burst of new work, unless a
   boundary's cycle comes first. It matters for a job with less slack than the wait for the next boundary,
   which the hub starts at once, off the grid (`services/hub/scheduling/offgrid.py`). And a gate pass at a
   planned start between cycles, as the loop runs it.

Equal times go in that order, so capacity freed at a boundary is seen by that boundary's cycle. The cycle
runs on every slot boundary while anything is active. This is the hub's period set to one slot and aligned
with the grid. When nothing is active the clock jumps to the boundary before the next arrival, skipping
cycles that would find nothing.
"""

from __future__ import annotations

import asyncio
import math
import os
import tempfile
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry

from caspian.v1 import common_pb2
from services.common.clock import ManualClock
from services.common.timeconv import timestamp_seconds, to_duration, to_timestamp
from services.hub.hub import Hub
from services.hub.loop import LoopState, Step, next_wake
from services.hub.metrics import HubMetrics
from services.hub.settings import HubSettings
from services.hub.store import SqliteStore

from .carbon import TraceCarbon, error_model, true_trace
from .dispatcher import SimDispatcher
from .interruptible import hub_policy_of, interruptible_message
from .optimizer import InProcessOptimizer, SolveFn
from .workload import Instance, first_boundary

Phase = common_pb2.AppWrapperPhase
TIME_LIMIT_S = 30.0
IMAGE = "registry.example/pai/batch:1"


@dataclass(frozen=True)
class JobOutcome:
    id: str
    phase: str
    cluster: str = ""
    start: float | None = None
    end: float | None = None
    reason: str = ""
    # The hub's own accounting (integrated over the carbon port's history, i.e. the true trace here).
    hub_actual_g: float = 0.0
    hub_counterfactual_g: float = 0.0
    # The run segments [start, end) on `cluster` as the dispatcher ran them (one for a job never paused).
    segments: tuple[tuple[float, float], ...] = ()


@dataclass
class RunResult:
    policy: str
    forecast: str
    outcomes: dict[str, JobOutcome]
    solve_seconds: list[float] = field(default_factory=list)
    solve_statuses: list[str] = field(default_factory=list)
    cycles: int = 0
    # The clock time of each cycle, in epoch seconds.
    cycle_times: list[float] = field(default_factory=list)
    fallback_cycles: int = 0
    error_cycles: int = 0
    optimizer_errors: int = 0
    notes: list[str] = field(default_factory=list)


def app_wrapper_for(job, interruptible: bool = True) -> common_pb2.AppWrapper:
    """The job's AppWrapper; an interruptible job says so unless `interruptible` is False."""
    message = common_pb2.AppWrapper(id=job.id, name=job.id, tenant="evaluation")
    if interruptible and getattr(job, "interruptible", False):
        message.interruptible.CopyFrom(interruptible_message())
    message.template.image = IMAGE
    message.template.resources.cpu_millis = job.cpu_millis
    message.template.resources.memory_bytes = job.memory_bytes
    message.template.expected_runtime.CopyFrom(to_duration(job.runtime))
    message.earliest_start.CopyFrom(to_timestamp(datetime.fromtimestamp(job.arrival, UTC)))
    message.deadline.CopyFrom(to_timestamp(datetime.fromtimestamp(job.deadline, UTC)))
    return message


def cluster_info(spec) -> common_pb2.ClusterInfo:
    info = common_pb2.ClusterInfo(name=spec.name, zone=spec.zone)
    info.capacity.cpu_millis = spec.cpu_millis
    info.capacity.memory_bytes = spec.memory_bytes
    p = spec.power
    info.power.CopyFrom(
        common_pb2.PowerModel(
            idle_watts=p.idle_watts,
            peak_watts=p.peak_watts,
            watts_per_core=p.watts_per_core,
            watts_per_gpu=p.watts_per_gpu,
            watts_per_gib=p.watts_per_gib,
            pue=p.pue,
        )
    )
    return info


def hub_settings(
    instance: Instance, policy: str, db_path: Path, time_limit_s: float, **overrides
) -> HubSettings:
    settings = HubSettings(
        port=0,
        metrics_port=-1,
        db_path=str(db_path),
        # A throwaway database: durability buys nothing here.
        db_synchronous="OFF",
        # Enabled, so the hub pokes its loop's debounce; the loop's task is not started (`simulate` is it).
        scheduler_enabled=True,
        # Every outcome is read at the end of the run: nothing is collected before.
        finished_ttl_seconds=0.0,
        slot_seconds=instance.slot_seconds,
        horizon_slots=instance.horizon_slots,
        policy=policy,
        solve_time_limit_seconds=time_limit_s,
    )
    return replace(settings, **overrides)


async def simulate(
    instance: Instance,
    policy: str,
    forecast: str,
    *,
    solve: SolveFn | None = None,
    time_limit_s: float = TIME_LIMIT_S,
    optimizer: InProcessOptimizer | None = None,
    hub_overrides: dict | None = None,
) -> RunResult:
    """Run `policy` over `instance`. `optimizer` replaces the in-process optimizer (tests); `hub_overrides`
    changes hub settings (experiments, e.g. {"lateness_gco2_per_slot": 1e-4})."""
    clock = ManualClock(instance.start)
    traces = {zone: true_trace(zone, instance.seed) for zone in instance.zones}
    carbon = TraceCarbon(traces, error_model(forecast, instance.seed), clock)
    optimizer = optimizer or InProcessOptimizer(solve)
    dispatcher = SimDispatcher(instance.clusters, clock)
    result = RunResult(policy, forecast, {})
    slot = instance.slot_seconds
    hub_policy, use_interruptible = hub_policy_of(policy)
    with tempfile.TemporaryDirectory(prefix="caspian-evaluation-", dir=_scratch()) as tmp:
        settings = hub_settings(
            instance, hub_policy, Path(tmp) / "hub.db", time_limit_s, **(hub_overrides or {})
        )
        store = SqliteStore(settings.db_path, now=clock.now, synchronous=settings.db_synchronous)
        hub = Hub(
            settings,
            store=store,
            clock=clock,
            carbon=carbon,
            optimizer=optimizer,
            dispatcher=dispatcher,
            metrics=HubMetrics.create(CollectorRegistry()),
        )
        await hub.open()
        try:
            for spec in instance.clusters:
                await hub.register_cluster(cluster_info(spec))
            await _run(instance, hub, clock, dispatcher, result, slot, use_interruptible)
            result.outcomes = dispatcher.with_segments(await _outcomes(hub))
        finally:
            await hub.stop()
    result.solve_seconds = optimizer.wall_seconds
    result.solve_statuses = optimizer.statuses
    result.optimizer_errors = len(optimizer.errors)
    if optimizer.errors:
        result.notes.append(f"{len(optimizer.errors)} solves raised; the first: {optimizer.errors[0]}")
    return result


async def _run(
    instance: Instance,
    hub: Hub,
    clock: ManualClock,
    dispatcher: SimDispatcher,
    result: RunResult,
    slot: int,
    use_interruptible: bool = True,
) -> None:
    arrivals = deque(sorted(instance.jobs, key=lambda j: (j.arrival, j.id)))
    boundary = first_boundary(instance.start.timestamp(), slot)
    give_up = instance.end + 2 * slot
    idle = False
    # The hub loop's own debounce: the hub pokes it as it pokes the running loop (arrivals, cluster changes,
    # requeues), and `next_wake` is the loop's rule for what is due.
    debounce = hub.loop.debounce
    next_gate = await _next_gate(hub)
    while True:
        state = LoopState(next_cycle=boundary, debounce_due=debounce.due, next_gate=next_gate)
        t_loop = next_wake(state, clock.now().timestamp()).at
        assert t_loop is not None  # the boundary is always set
        t_arrival = arrivals[0].arrival if arrivals else math.inf
        t_end = dispatcher.next_end()
        t_end = math.inf if t_end is None else t_end
        if t_end <= t_arrival and t_end <= t_loop:
            clock.set(datetime.fromtimestamp(t_end, UTC))
            finished = dispatcher.finish_due(t_end)
            await hub.reconciler.apply_jobs([event for _, event in finished])
            continue
        if t_arrival <= t_loop:
            clock.set(datetime.fromtimestamp(t_arrival, UTC))
            batch = []
            while arrivals and arrivals[0].arrival == t_arrival:
                batch.append((app_wrapper_for(arrivals.popleft(), use_interruptible), ""))
            for outcome in await hub.submit_many(batch):  # the commit pokes the debounce
                if outcome.error is not None:
                    result.notes.append(f"{outcome.id}: refused at the door: {outcome.error}")
            continue
        clock.set(datetime.fromtimestamp(t_loop, UTC))
        step = next_wake(state, t_loop).step
        if step is Step.GATES:
            await hub.scheduler.dispatch_due()
            await hub.reconciler.apply_jobs(dispatcher.take_events())
            next_gate = await _next_gate(hub)
            continue
        if t_loop < boundary:  # the debounce's cycle
            idle = False
            await _tick(hub, dispatcher, result)
            next_gate = await _next_gate(hub)
            continue
        counts = await hub.store.phase_counts()
        active = sum(counts.get(p, 0) for p in _ACTIVE)
        if not active and not arrivals:
            # One more cycle accounts the last finished jobs; then the run is over.
            await _tick(hub, dispatcher, result)
            return
        if boundary > give_up:
            result.notes.append(f"stopped with {active} AppWrappers still active after the last deadline")
            return
        if active:
            idle = False
        elif idle:
            # Nothing to plan until the next arrival, and the last finished jobs are accounted.
            debounce.clear()
            boundary = max(boundary + slot, first_boundary(t_arrival, slot))
            continue
        else:
            idle = True
        await _tick(hub, dispatcher, result)
        next_gate = await _next_gate(hub)
        boundary += slot


async def _next_gate(hub: Hub) -> float | None:
    at = await hub.scheduler.next_gate_after(hub.clock.now())
    return None if at is None else at.timestamp()


_ACTIVE = (
    Phase.APP_WRAPPER_PHASE_PENDING,
    Phase.APP_WRAPPER_PHASE_SCHEDULED,
    Phase.APP_WRAPPER_PHASE_DISPATCHING,
    Phase.APP_WRAPPER_PHASE_RUNNING,
    Phase.APP_WRAPPER_PHASE_SUSPENDED,
)


async def _tick(hub: Hub, dispatcher: SimDispatcher, result: RunResult) -> None:
    """One cycle, as `ScheduleLoop` runs it: it ends the debounce's burst unless it poked the debounce itself."""
    pokes = hub.loop.debounce.pokes
    report = await hub.scheduler.tick()
    hub.loop.debounce.end_burst(pokes)
    result.cycles += 1
    result.cycle_times.append(hub.clock.now().timestamp())
    if report.fallback:
        result.fallback_cycles += 1
    if report.outcome == "error":
        result.error_cycles += 1
        result.notes.append(f"cycle {report.cycle}: {'; '.join(report.notes)}")
    await hub.reconciler.apply_jobs(dispatcher.take_events())


async def _outcomes(hub: Hub) -> dict[str, JobOutcome]:
    out: dict[str, JobOutcome] = {}
    token = ""
    while True:
        page = await hub.list(page_size=1000, page_token=token)
        for message in page.items:
            status = message.status
            out[message.id] = JobOutcome(
                id=message.id,
                phase=Phase.Name(status.phase).removeprefix("APP_WRAPPER_PHASE_").lower(),
                cluster=status.target_cluster,
                start=timestamp_seconds(status.started_at) if status.HasField("started_at") else None,
                end=timestamp_seconds(status.finished_at) if status.HasField("finished_at") else None,
                reason=status.reason,
                hub_actual_g=status.carbon.actual_gco2,
                hub_counterfactual_g=status.carbon.counterfactual_gco2,
            )
        token = page.next_page_token
        if not token:
            return dict(sorted(out.items()))


def run_policy(
    instance: Instance,
    policy: str,
    forecast: str,
    *,
    solve: SolveFn | None = None,
    time_limit_s: float = TIME_LIMIT_S,
    hub_overrides: dict | None = None,
) -> RunResult:
    return asyncio.run(
        simulate(
            instance, policy, forecast, solve=solve, time_limit_s=time_limit_s, hub_overrides=hub_overrides
        )
    )


def _scratch() -> str | None:
    """Memory-backed scratch space where there is one: the store's files never need to reach a disk."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
