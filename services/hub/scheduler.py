"""One scheduling cycle: snapshot -> decide -> persist -> open gates.

`Scheduler.tick()` is the whole cycle and owns no timing (see `loop.py` for period, debounce and backoff):

1. Snapshot: the registered clusters with readiness and free capacity (dispatcher ProbeClusters), and a carbon
   forecast per zone for the horizon (carbon GetForecast; the hub's cache when the service is down).
2. Decide: jobs whose deadline can no longer be met become Unschedulable; every Pending job and every
   Scheduled job whose start has not come goes to the optimizer, with running and due jobs as reservations
   and the current plan's cluster for the migration cost. If the optimizer fails twice, the hub's greedy
   fallback places them.
3. Persist: each placement sets the target cluster, the planned start, phase Scheduled and planned gCO2; an
   unplaced job goes (back) to Pending with the reason. Writes are conditional on the revision read in the
   snapshot, so a Cancel that lands mid-cycle wins.
4. Gates: every Scheduled job whose planned start has come turns Dispatching and goes to DispatchJob.

Then it accounts finished jobs (actual and counterfactual gCO2), deletes the Jobs of cancelled AppWrappers
that may remain on spokes, and compacts the change log. The cycle number is in every log line and in the
`caspian_schedule_cycle` gauge.

Everything outside the hub is reached through ports (`ports.py`), so an offline evaluation can run this class
in-process against its own carbon trace, optimizer and simulated dispatcher, on its own clock.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from caspian.v1 import common_pb2, optimizer_pb2
from services.common.clock import Clock
from services.common.limits import MAX_RELATIVE_SPREAD
from services.common.stable import stable_min
from services.common.timeconv import duration_seconds, from_timestamp, to_duration, to_timestamp
from services.hub.accounting import job_energy_wh, mean_intensity, series_mean
from services.hub.fallback import GreedyOptimizer
from services.hub.grid import Grid, align
from services.hub.metrics import HubMetrics
from services.hub.phases import DISPATCHING, FAILED, PENDING, RUNNING, SCHEDULED
from services.hub.ports import (
    CarbonPort,
    ClusterProbe,
    DispatcherPort,
    DispatchTarget,
    IntensitySample,
    OptimizerPort,
)
from services.hub.store import AppWrapperRecord, IntensityRow, Store, Update
from services.hub.transitions import (
    accounted,
    confirm_dispatch,
    mark_cleaned,
    open_gate,
    to_pending,
    to_scheduled,
    to_unschedulable,
)
from services.hub.urgent import UrgentJob, UrgentPlacement, place_urgent
from services.hub.validation import eligible_clusters, fits

log = logging.getLogger("caspian.hub.scheduler")


POLICY_BY_NAME = {
    "caspian": optimizer_pb2.POLICY_CASPIAN,
    "round_robin": optimizer_pb2.POLICY_ROUND_ROBIN,
    "least_loaded": optimizer_pb2.POLICY_LEAST_LOADED,
    "greedy_carbon": optimizer_pb2.POLICY_GREEDY_CARBON,
    "temporal_only": optimizer_pb2.POLICY_TEMPORAL_ONLY,
    "ibm_caspian": optimizer_pb2.POLICY_IBM_CASPIAN,
    "naive_milp": optimizer_pb2.POLICY_NAIVE_MILP,
}
CACHE_KEEP_SECONDS = 35 * 86400
# Policies that never choose a cluster by its carbon: urgent jobs go to the least loaded cluster.
_SPACE_BLIND = (
    optimizer_pb2.POLICY_ROUND_ROBIN,
    optimizer_pb2.POLICY_LEAST_LOADED,
    optimizer_pb2.POLICY_TEMPORAL_ONLY,
)


class CycleLog(logging.LoggerAdapter):
    """A logger that adds the cycle number to every line, keeping the call's own extra fields."""

    def process(self, msg, kwargs):
        kwargs["extra"] = {**self.extra, **(kwargs.get("extra") or {})}
        return msg, kwargs


@dataclass(frozen=True)
class SchedulerConfig:
    slot_seconds: int = 900
    horizon_slots: int = 96
    policy: int = optimizer_pb2.POLICY_CASPIAN
    solve_time_limit_seconds: float = 30.0
    migration_cost_gco2: float = 1.0
    lateness_gco2_per_slot: float = 0.01
    preferred_discount: float = 0.05
    mip_gap: float = 0.0
    risk_aversion: float = 0.0
    plan_on_estimate: bool = False
    carbon_stale_seconds: float = 3600.0
    carbon_blind_after_seconds: float = 21600.0
    dispatch_concurrency: int = 16
    max_dispatch_attempts: int = 5
    watch_history: int = 100_000
    finished_ttl_seconds: float = 0.0

    @classmethod
    def from_settings(cls, settings) -> SchedulerConfig:
        return cls(
            slot_seconds=settings.slot_seconds,
            horizon_slots=settings.horizon_slots,
            policy=POLICY_BY_NAME[settings.policy],
            solve_time_limit_seconds=settings.solve_time_limit_seconds,
            migration_cost_gco2=settings.migration_cost_gco2,
            lateness_gco2_per_slot=settings.lateness_gco2_per_slot,
            preferred_discount=settings.preferred_discount,
            mip_gap=settings.mip_gap,
            risk_aversion=settings.risk_aversion,
            plan_on_estimate=settings.plan_on_estimate,
            carbon_stale_seconds=settings.carbon_stale_seconds,
            carbon_blind_after_seconds=settings.carbon_blind_after_seconds,
            dispatch_concurrency=settings.dispatch_concurrency,
            max_dispatch_attempts=settings.max_dispatch_attempts,
            watch_history=settings.watch_history,
            finished_ttl_seconds=settings.finished_ttl_seconds,
        )


@dataclass
class CycleReport:
    """What one cycle did; GetStats and TriggerSchedule return it as a CycleSummary."""

    cycle: int
    started_at: datetime
    duration_seconds: float = 0.0
    considered: int = 0
    planned: int = 0
    unplaced: int = 0
    dispatched: int = 0
    unschedulable: int = 0
    solve_status: int = optimizer_pb2.SOLVE_STATUS_UNSPECIFIED
    policy: int = optimizer_pb2.POLICY_UNSPECIFIED
    planned_gco2: float = 0.0
    agnostic_gco2: float = 0.0
    gap: float = 0.0
    carbon_stale: bool = False
    carbon_blind: bool = False
    fallback: bool = False
    notes: list[str] = field(default_factory=list)
    # ok | idle (nothing to place) | fallback | error: the label of caspian_schedule_cycles_total.
    outcome: str = "ok"


@dataclass(frozen=True)
class Preview:
    placeable: bool
    cluster: str = ""
    planned_start: datetime | None = None
    planned_gco2: float = 0.0
    start_now_gco2: float = 0.0
    reason: str = ""
    delay_seconds: float = 0.0


@dataclass
class ClusterView:
    info: common_pb2.ClusterInfo
    ready: bool
    reason: str
    free: common_pb2.Resources | None


@dataclass
class CarbonView:
    grid: Grid
    # gCO2/kWh per slot of the grid, by zone.
    series: dict[str, list[float]]
    # The forecast's typical relative error per slot, by zone, where the carbon service gave one.
    spread: dict[str, list[float]] = field(default_factory=dict)
    stale: bool = False
    blind: bool = False
    notes: list[str] = field(default_factory=list)


class ClusterDirectory(Protocol):
    """The hub's registered clusters, as the scheduler needs them."""

    def clusters(self) -> Mapping[str, common_pb2.ClusterInfo]: ...

    async def record_probes(self, probes: Sequence[ClusterProbe], at: datetime) -> None: ...


def _seconds(ts) -> float:
    return ts.seconds + ts.nanos / 1e9


def runtime_of(message: common_pb2.AppWrapper) -> float:
    return duration_seconds(message.template.expected_runtime)


def _reason_name(reason: int) -> str:
    name = optimizer_pb2.UnplacedReason.Name(reason) if reason else "UNPLACED_REASON_UNSPECIFIED"
    return name.removeprefix("UNPLACED_REASON_").lower().replace("_", " ")


def _add(a: common_pb2.Resources, b: common_pb2.Resources) -> None:
    a.cpu_millis += b.cpu_millis
    a.memory_bytes += b.memory_bytes
    a.gpus += b.gpus


class Scheduler:
    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        carbon: CarbonPort,
        optimizer: OptimizerPort,
        dispatcher: DispatcherPort,
        directory: ClusterDirectory,
        config: SchedulerConfig = SchedulerConfig(),
        metrics: HubMetrics | None = None,
        fallback: OptimizerPort | None = None,
    ):
        self.store = store
        self.clock = clock
        self.carbon = carbon
        self.optimizer = optimizer
        self.dispatcher = dispatcher
        self.directory = directory
        self.config = config
        self.metrics = metrics
        self.fallback = fallback if fallback is not None else GreedyOptimizer()
        self.cycle = 0
        self.last_report: CycleReport | None = None
        self._last_carbon: CarbonView | None = None

    # -- the cycle -------------------------------------------------------------------------------------

    async def tick(self) -> CycleReport:
        self.cycle = await self.store.next_cycle()
        clog = CycleLog(log, {"cycle": self.cycle})
        now = self.clock.now()
        report = CycleReport(self.cycle, now, policy=self.config.policy)
        began = time.perf_counter()
        try:
            grid = Grid.at(now, self.config.slot_seconds, self.config.horizon_slots)
            clusters = await self._snapshot_clusters(now, report)
            carbon = await self._snapshot_carbon(grid, clusters, now)
            report.carbon_stale, report.carbon_blind = carbon.stale, carbon.blind
            report.notes.extend(carbon.notes)
            if carbon.blind:
                report.policy = optimizer_pb2.POLICY_LEAST_LOADED
                report.notes.append("carbon-blind: forecasts missing or too old; placing least-loaded")
            records = await self.store.active_app_wrappers()
            await self._plan(records, clusters, carbon, grid, now, report, clog)
            report.dispatched = await self.dispatch_due(clog)
            await self._account(report, clog)
            await self._clean_up(clog)
            await self._collect(now, clog)
            await self.store.compact(self.config.watch_history)
            if report.fallback:
                report.outcome = "fallback"
            elif report.considered == 0:
                report.outcome = "idle"
        except Exception as exc:  # noqa: BLE001 - a failed cycle is reported and retried by the loop
            report.outcome = "error"
            report.notes.append(f"cycle failed: {type(exc).__name__}: {exc}")
            clog.exception("cycle failed")
        report.duration_seconds = time.perf_counter() - began
        self._observe(report)
        clog.info(
            "cycle",
            extra={
                "outcome": report.outcome,
                "duration_s": round(report.duration_seconds, 4),
                "considered": report.considered,
                "planned": report.planned,
                "unplaced": report.unplaced,
                "dispatched": report.dispatched,
                "unschedulable": report.unschedulable,
                "carbon_stale": report.carbon_stale,
                "carbon_blind": report.carbon_blind,
                "fallback": report.fallback,
                "notes": report.notes,
            },
        )
        self.last_report = report
        return report

    def _observe(self, report: CycleReport) -> None:
        if self.metrics is None:
            return
        self.metrics.cycle_seconds.observe(report.duration_seconds)
        self.metrics.cycles.labels(report.outcome).inc()
        self.metrics.last_cycle.set(report.cycle)
        self.metrics.carbon_stale.set(1 if report.carbon_stale else 0)
        self.metrics.carbon_blind.set(1 if report.carbon_blind else 0)
        if report.fallback:
            self.metrics.optimizer_fallbacks.inc()

    # -- 1. snapshot ------------------------------------------------------------------------------------

    async def _snapshot_clusters(self, now: datetime, report: CycleReport) -> dict[str, ClusterView]:
        registered = dict(self.directory.clusters())
        probes: dict[str, ClusterProbe] = {}
        if registered:
            try:
                found = await self.dispatcher.probe(sorted(registered))
                probes = {p.cluster: p for p in found}
                await self.directory.record_probes(found, now)
                registered = dict(self.directory.clusters())
            except Exception as exc:  # noqa: BLE001 - plan on registered capacity instead
                report.notes.append(f"dispatcher probe failed ({_short(exc)}); using registered capacity")
        views = {}
        for name, info in registered.items():
            probe = probes.get(name)
            if probe is not None:
                free = None
                if probe.free is not None:
                    free = common_pb2.Resources(
                        cpu_millis=probe.free.cpu_millis,
                        memory_bytes=probe.free.memory_bytes,
                        gpus=probe.free.gpus,
                    )
                views[name] = ClusterView(info, probe.ready, probe.reason, free)
            else:
                views[name] = ClusterView(info, info.ready, info.not_ready_reason, None)
        return views

    async def _snapshot_carbon(
        self, grid: Grid, clusters: Mapping[str, ClusterView], now: datetime
    ) -> CarbonView:
        zones = sorted({view.info.zone for view in clusters.values()})
        results = await asyncio.gather(*(self._zone_forecast(zone, grid, now) for zone in zones))
        view = CarbonView(grid, {})
        known: list[float] = []
        for zone, values, spread, age, stale, note in results:
            if note:
                view.notes.append(note)
            if values is None or age > self.config.carbon_blind_after_seconds:
                view.blind = True
            if stale:
                view.stale = True
            if values is not None:
                view.series[zone] = values
                known.extend(values)
            if spread:
                view.spread[zone] = spread
        if view.blind:
            # Flat series: every slot and cluster look alike, so placement ignores carbon.
            view.spread.clear()
            overall = sum(known) / len(known) if known else 0.0
            for zone in zones:
                values = view.series.get(zone)
                level = sum(values) / len(values) if values else overall
                view.series[zone] = [level] * grid.slots
        self._last_carbon = view
        return view

    async def _zone_forecast(
        self, zone: str, grid: Grid, now: datetime
    ) -> tuple[str, list[float] | None, list[float], float, bool, str]:
        """(zone, values, relative spread, age, stale, note); a cached forecast carries no spread."""
        now_s = now.timestamp()
        try:
            forecast = await self.carbon.forecast(zone, grid.start, grid.slot_seconds, grid.slots)
            values = [float(v) for v in forecast.values]
            if self.config.plan_on_estimate and len(forecast.estimate) == len(values):
                values = [float(v) for v in forecast.estimate]
            if len(values) != grid.slots or not all(math.isfinite(v) and v >= 0 for v in values):
                raise ValueError(f"forecast for {zone} has {len(values)} usable values, asked {grid.slots}")
            spread = [float(s) for s in forecast.relative_spread]
            if len(spread) != grid.slots or not all(
                math.isfinite(s) and 0 <= s <= MAX_RELATIVE_SPREAD for s in spread
            ):
                spread = []  # missing or malformed: plan as if exact
            age = max(0.0, forecast.age_seconds)
            rows = [
                IntensityRow(zone, grid.start_s + i * grid.slot_seconds, grid.slot_seconds, v, now_s - age)
                for i, v in enumerate(values)
            ]
            await self.store.save_intensities(rows, keep_after=now_s - CACHE_KEEP_SECONDS)
            stale = forecast.stale or age > self.config.carbon_stale_seconds
            note = f"carbon {zone}: forecast is stale ({age:.0f} s old)" if stale else ""
            return zone, values, spread, age, stale, note
        except Exception as exc:  # noqa: BLE001 - fall back to the cache
            rows = await self.store.intensities(zone, grid.start_s, grid.end_s)
            if not rows:
                return zone, None, [], math.inf, True, f"carbon {zone}: {_short(exc)}; no cached forecast"
            values = align(rows, grid)
            age = now_s - max(r.fetched_at for r in rows)
            return (
                zone,
                values,
                [],
                age,
                True,
                f"carbon {zone}: {_short(exc)}; using cached forecast ({age:.0f} s old, stale)",
            )

    # -- 2-3. decide and persist ------------------------------------------------------------------------

    async def _plan(
        self,
        records: list[AppWrapperRecord],
        clusters: Mapping[str, ClusterView],
        carbon: CarbonView,
        grid: Grid,
        now: datetime,
        report: CycleReport,
        clog: CycleLog,
    ) -> None:
        now_s = now.timestamp()
        ready = {name: view for name, view in clusters.items() if view.ready}
        registered = {name: view.info for name, view in clusters.items()}
        reservations: list[optimizer_pb2.Reservation] = []
        running_use: dict[str, common_pb2.Resources] = defaultdict(common_pb2.Resources)
        candidates: list[AppWrapperRecord] = []
        updates: list[Update] = []
        for record in records:
            message = record.message
            status = message.status
            runtime = runtime_of(message)
            if record.phase in (RUNNING, DISPATCHING) or (
                record.phase == SCHEDULED and _seconds(status.planned_start) <= now_s
            ):
                start = _seconds(status.started_at) if status.HasField("started_at") else now_s
                end_slot = max(1, grid.slot_index(max(start + runtime, now_s)))
                reservations.append(
                    optimizer_pb2.Reservation(
                        cluster=status.target_cluster,
                        resources=message.template.resources,
                        start_slot=0,
                        end_slot=min(end_slot, grid.slots),
                        job_id=message.id,
                    )
                )
                if record.phase == RUNNING:
                    _add(running_use[status.target_cluster], message.template.resources)
            elif record.phase in (PENDING, SCHEDULED):
                candidates.append(record)

        to_solve: list[AppWrapperRecord] = []
        urgent: dict[str, tuple[AppWrapperRecord, UrgentJob]] = {}
        for record in candidates:
            message = record.message
            runtime = runtime_of(message)
            earliest = max(_seconds(message.earliest_start), now_s)
            first = grid.first_start_at_or_after(earliest)
            deadline = _seconds(message.deadline)
            eligible = _fitting_clusters(message, registered)
            # Too little slack to wait for the grid: it can still start before the grid does (urgent.py).
            off_grid = first + runtime > deadline + 1e-6
            if off_grid and earliest + runtime > deadline + 1e-6:
                why = (
                    f"deadline {_iso(deadline)} can no longer be met: the earliest start is {_iso(earliest)} "
                    f"and the job runs {runtime:.0f} s"
                )
                updates.append(to_unschedulable(record, why, self.cycle))
                report.unschedulable += 1
                continue
            if not eligible:
                why = "no registered cluster allowed by the affinities is large enough"
                updates.append(to_unschedulable(record, why, self.cycle))
                report.unschedulable += 1
                continue
            usable = [n for n in eligible if n in ready]
            if not usable:
                updates.append(to_pending(record, "waiting: no allowed cluster is ready", self.cycle))
                report.unplaced += 1
                continue
            if off_grid and earliest < grid.end_s:
                job = UrgentJob(
                    record.id, message.template.resources, earliest, runtime, deadline, tuple(usable)
                )
                urgent[record.id] = (record, job)
                continue
            if first + runtime > grid.end_s:
                updates.append(
                    to_pending(record, "waiting: the run ends beyond the planning horizon", self.cycle)
                )
                report.unplaced += 1
                continue
            to_solve.append(record)

        report.considered = len(to_solve) + len(urgent)
        if urgent:
            reservations.extend(
                self._place_urgent(
                    urgent, ready, running_use, reservations, carbon, grid, now_s, report, updates
                )
            )
        if to_solve:
            request = self._solve_request(to_solve, ready, running_use, reservations, carbon, grid, now_s)
            response = await self._solve(request, report, clog)
            report.solve_status = response.status
            report.planned_gco2 = response.emissions_gco2
            report.agnostic_gco2 = response.agnostic_gco2
            report.gap = response.gap
            if response.policy:
                report.policy = response.policy
            placements = {p.job_id: p for p in response.placements}
            jobs = {j.id: j for j in request.jobs}
            for record in to_solve:
                placement = placements.get(record.id)
                problem = _check_placement(placement, jobs[record.id], request, grid)
                if problem:
                    report.unplaced += 1
                    updates.append(to_pending(record, problem, self.cycle))
                    continue
                report.planned += 1
                baseline = None
                if not record.baseline_cluster:
                    baseline = self._baseline(record, ready, carbon, grid, now_s)
                start = grid.start_s + placement.start_slot * grid.slot_seconds
                updates.append(
                    to_scheduled(
                        record,
                        placement.cluster,
                        start,
                        placement.gco2,
                        placement.energy_wh,
                        baseline,
                        self.cycle,
                    )
                )
        await self._persist(updates)

    def _urgent_placements(
        self,
        jobs: Sequence[UrgentJob],
        ready: Mapping[str, ClusterView],
        running_use: Mapping[str, common_pb2.Resources],
        reservations: Sequence[optimizer_pb2.Reservation],
        carbon: CarbonView,
        grid: Grid,
    ) -> tuple[list[UrgentPlacement], list[optimizer_pb2.Reservation], list[str]]:
        """Where the jobs that cannot wait for the grid start (urgent.py)."""

        def cost(job: UrgentJob, name: str) -> tuple[float, float]:
            return _forecast_run(job.resources, job.runtime, ready[name].info, carbon, grid, job.start)

        policy = optimizer_pb2.POLICY_LEAST_LOADED if carbon.blind else self.config.policy
        return place_urgent(
            jobs,
            {name: _usable_capacity(view, running_use) for name, view in ready.items()},
            reservations,
            grid,
            cost,
            carbon_aware=policy not in _SPACE_BLIND,
        )

    def _place_urgent(
        self,
        urgent: Mapping[str, tuple[AppWrapperRecord, UrgentJob]],
        ready: Mapping[str, ClusterView],
        running_use: Mapping[str, common_pb2.Resources],
        reservations: Sequence[optimizer_pb2.Reservation],
        carbon: CarbonView,
        grid: Grid,
        now_s: float,
        report: CycleReport,
        updates: list[Update],
    ) -> list[optimizer_pb2.Reservation]:
        """Start the jobs that cannot wait for the grid; return their reservations."""
        placements, booked, waiting = self._urgent_placements(
            [job for _, job in urgent.values()], ready, running_use, reservations, carbon, grid
        )
        for placement in placements:
            record, job = urgent[placement.job_id]
            report.planned += 1
            baseline = None
            if not record.baseline_cluster:
                baseline = self._baseline(record, ready, carbon, grid, now_s, start=job.start)
            updates.append(
                to_scheduled(
                    record,
                    placement.cluster,
                    placement.start,
                    placement.gco2,
                    placement.energy_wh,
                    baseline,
                    self.cycle,
                )
            )
        for job_id in waiting:
            record, job = urgent[job_id]
            latest = _iso(job.deadline - job.runtime)
            why = f"waiting: it must start by {latest} to meet its deadline, and no allowed cluster has room now"
            updates.append(to_pending(record, why, self.cycle))
            report.unplaced += 1
        return booked

    def _solve_request(
        self,
        records: Sequence[AppWrapperRecord],
        ready: Mapping[str, ClusterView],
        running_use: Mapping[str, common_pb2.Resources],
        reservations: Sequence[optimizer_pb2.Reservation],
        carbon: CarbonView,
        grid: Grid,
        now_s: float,
    ) -> optimizer_pb2.SolveRequest:
        request = optimizer_pb2.SolveRequest(grid=grid.proto())
        for name in sorted(ready):
            view = ready[name]
            capacity = _usable_capacity(view, running_use)
            request.clusters.add(name=name, zone=view.info.zone, capacity=capacity, power=view.info.power)
            request.forecasts.add(
                cluster=name,
                gco2_per_kwh=carbon.series.get(view.info.zone, [0.0] * grid.slots),
                relative_spread=carbon.spread.get(view.info.zone, []),
            )
        request.reservations.extend(r for r in reservations if r.cluster in ready)
        names = set(ready)
        for record in records:
            message = record.message
            status = message.status
            job = request.jobs.add(
                id=message.id,
                resources=message.template.resources,
                runtime=message.template.expected_runtime,
                deadline=message.deadline,
                priority=message.priority,
            )
            job.earliest_start.CopyFrom(
                to_timestamp(datetime.fromtimestamp(max(_seconds(message.earliest_start), now_s), UTC))
            )
            job.required_clusters.extend(n for n in message.required_clusters if n in names)
            job.preferred_clusters.extend(n for n in message.preferred_clusters if n in names)
            # Temporal-only keeps a job on its home: its first preferred cluster, else the optimizer's
            # stable spread over the allowed clusters.
            job.home_cluster = job.preferred_clusters[0] if job.preferred_clusters else ""
            job.excluded_clusters.extend(n for n in message.excluded_clusters if n in names)
            if record.phase == SCHEDULED and status.target_cluster in names:
                job.current_cluster = status.target_cluster
        options = request.options
        options.policy = optimizer_pb2.POLICY_LEAST_LOADED if carbon.blind else self.config.policy
        options.time_limit.CopyFrom(to_duration(self.config.solve_time_limit_seconds))
        options.migration_cost_gco2 = self.config.migration_cost_gco2
        options.lateness_gco2_per_slot = self.config.lateness_gco2_per_slot
        options.preferred_discount = self.config.preferred_discount
        options.risk_aversion = self.config.risk_aversion
        options.mip_gap = self.config.mip_gap
        return request

    async def _solve(
        self, request: optimizer_pb2.SolveRequest, report: CycleReport, clog: CycleLog, attempts: int = 2
    ) -> optimizer_pb2.SolveResponse:
        """The optimizer's answer; after `attempts` failures (down, timed out, no solution) the greedy one."""
        failures = []
        for attempt in range(1, attempts + 1):
            try:
                response = await self.optimizer.solve(request)
            except Exception as exc:  # noqa: BLE001 - down or timed out: retry once, then fall back
                failures.append(_short(exc))
                clog.warning("optimizer failed", extra={"attempt": attempt, "error": _short(exc)})
                continue
            if response.status == optimizer_pb2.SOLVE_STATUS_NO_SOLUTION_IN_TIME:
                failures.append("no solution in time")
                clog.warning("optimizer found no solution in time", extra={"attempt": attempt})
                continue
            return response
        report.fallback = True
        times = "twice" if attempts == 2 else f"{attempts} times" if attempts > 1 else "once"
        report.notes.append(f"optimizer failed {times} ({'; '.join(failures)}); greedy fallback placement")
        return await self.fallback.solve(request)

    def _baseline(
        self,
        record: AppWrapperRecord,
        ready: Mapping[str, ClusterView],
        carbon: CarbonView,
        grid: Grid,
        now_s: float,
        start: float | None = None,
    ) -> tuple[str, float, float] | None:
        """The carbon-agnostic placement: least-loaded cluster, at `start` (an urgent job's) or else the first
        slot at or after the earliest start. Equally loaded clusters (an idle fleet) are told apart by a stable
        hash of the id, as a scheduler breaking ties at random would: the first by name would always charge
        the counterfactual to the same cluster, whatever its grid."""
        message = record.message
        eligible = _fitting_clusters(message, {k: v.info for k, v in ready.items()})
        if not eligible:
            return None

        def load(name: str) -> float:
            view = ready[name]
            capacity = view.info.capacity.cpu_millis or 1
            free = view.free.cpu_millis if view.free is not None else capacity
            return 1.0 - free / capacity

        cluster = stable_min(record.id, {n: load(n) for n in eligible})
        if start is None:
            start = grid.first_start_at_or_after(max(_seconds(message.earliest_start), now_s))
        grams, _ = _forecast_run(
            message.template.resources, runtime_of(message), ready[cluster].info, carbon, grid, start
        )
        return cluster, start, grams

    async def _persist(self, updates: list[Update]) -> None:
        # Chunks keep each commit short, so submissions interleave with a large plan.
        for i in range(0, len(updates), 500):
            await self.store.update_app_wrappers(updates[i : i + 500])

    # -- 4. gates ---------------------------------------------------------------------------------------

    async def dispatch_due(self, clog: logging.LoggerAdapter | None = None) -> int:
        """Open the gate of every Scheduled job whose start has come and hand it to the dispatcher.

        Also re-sends Dispatching jobs the dispatcher never confirmed (e.g. the hub stopped mid-call): Job
        names are deterministic, so a repeat finds the Job instead of creating another.
        """
        clog = clog or CycleLog(log, {"cycle": self.cycle})
        now = self.clock.now()
        now_s = now.timestamp()
        clusters = self.directory.clusters()
        records = await self.store.active_app_wrappers()
        opens: list[Update] = []
        back: list[Update] = []
        for record in records:
            status = record.message.status
            due = record.phase == SCHEDULED and _seconds(status.planned_start) <= now_s
            unconfirmed = record.phase == DISPATCHING and not status.job_name
            if not (due or unconfirmed):
                continue
            info = clusters.get(status.target_cluster)
            if info is None or not info.ready:
                why = f"target cluster {status.target_cluster} is {'gone' if info is None else 'not ready'}"
                back.append(to_pending(record, f"re-planning: {why}", self.cycle, allow_dispatching=True))
                continue
            opens.append(Update(record.id, open_gate, record.revision))
        await self._persist(back)
        if not opens:
            return 0
        opened = [r for r in await self.store.update_app_wrappers(opens) if r is not None]
        opened = [r for r in opened if r.phase == DISPATCHING]
        gate = asyncio.Semaphore(self.config.dispatch_concurrency)
        results: list[Update] = []

        async def send(record: AppWrapperRecord) -> None:
            message = record.message
            info = clusters[message.status.target_cluster]
            target = DispatchTarget(
                cluster=info.name,
                kube_context=info.kube_context or info.name,
                namespace=message.namespace or info.job_namespace or "default",
            )
            async with gate:
                began = time.perf_counter()
                try:
                    result = await self.dispatcher.dispatch(message, target, now)
                except Exception as exc:  # noqa: BLE001 - retried on a later cycle, up to the attempt limit
                    results.append(self._dispatch_failed(record, exc))
                    clog.warning("dispatch failed", extra={"app_wrapper": record.id, "error": _short(exc)})
                    return
                if self.metrics is not None:
                    self.metrics.dispatch_latency.observe(time.perf_counter() - began)
            results.append(Update(record.id, confirm_dispatch(result.job_name)))

        await asyncio.gather(*(send(r) for r in opened))
        await self._persist(results)
        if opened:
            clog.info("gates opened", extra={"dispatched": len(opened)})
        return len(opened)

    def _dispatch_failed(self, record: AppWrapperRecord, exc: Exception) -> Update:
        attempts = record.message.status.dispatch_attempts
        limit = self.config.max_dispatch_attempts
        error = _short(exc)

        def mutate(r: AppWrapperRecord) -> bool:
            if r.phase != DISPATCHING or r.message.status.job_name:
                return False
            status = r.message.status
            if attempts >= limit:
                status.phase = FAILED
                status.reason = f"dispatch failed {attempts} times: {error}"
            else:
                status.phase = SCHEDULED
                status.reason = f"dispatch attempt {attempts} failed: {error}; retrying"
            return True

        return Update(record.id, mutate)

    async def next_gate_after(self, now: datetime) -> datetime | None:
        """The next planned start after `now`, for the loop to wake at."""
        now_s = now.timestamp()
        starts = [
            _seconds(r.message.status.planned_start)
            for r in await self.store.active_app_wrappers()
            if r.phase == SCHEDULED and _seconds(r.message.status.planned_start) > now_s
        ]
        return datetime.fromtimestamp(min(starts), UTC) if starts else None

    # -- accounting and clean-up ---------------------------------------------------------------------

    async def _account(self, report: CycleReport, clog: CycleLog) -> None:
        records = await self.store.app_wrappers_needing_accounting()
        if not records:
            return
        clusters = self.directory.clusters()
        windows: dict[str, list[tuple[float, float]]] = defaultdict(list)
        plans = []
        for record in records:
            status = record.message.status
            if not (status.HasField("started_at") and status.HasField("finished_at")):
                plans.append((record, None, None))
                continue
            t0, t1 = _seconds(status.started_at), _seconds(status.finished_at)
            run = clusters.get(status.target_cluster)
            base = clusters.get(record.baseline_cluster) if record.baseline_cluster else None
            if run is not None:
                windows[run.zone].append((t0, t1))
            if base is not None and record.baseline_start is not None:
                windows[base.zone].append((record.baseline_start, record.baseline_start + (t1 - t0)))
            plans.append((record, run, base))
        samples = {zone: await self._intensity_samples(zone, spans) for zone, spans in windows.items()}
        updates = []
        deferred = 0
        for record, run, base in plans:
            status = record.message.status
            if run is None:
                # Never ran, or its cluster is gone: nothing to integrate; the planned figure stands.
                actual = status.carbon.planned_gco2 if status.HasField("started_at") else 0.0
                energy = status.carbon.energy_wh if status.HasField("started_at") else 0.0
                counterfactual = status.carbon.counterfactual_gco2 if status.HasField("started_at") else 0.0
                updates.append(Update(record.id, accounted(actual, counterfactual, energy)))
                continue
            t0 = from_timestamp(status.started_at)
            t1 = from_timestamp(status.finished_at)
            seconds = (t1 - t0).total_seconds()
            intensity = mean_intensity(samples.get(run.zone, []), t0, t1)
            if intensity is None:
                deferred += 1
                continue
            resources = record.message.template.resources
            energy = job_energy_wh(resources, seconds, run)
            actual = energy / 1000.0 * intensity
            counterfactual = status.carbon.counterfactual_gco2
            if base is not None and record.baseline_start is not None:
                b0 = datetime.fromtimestamp(record.baseline_start, UTC)
                base_intensity = mean_intensity(samples.get(base.zone, []), b0, b0 + (t1 - t0))
                if base_intensity is not None:
                    counterfactual = job_energy_wh(resources, seconds, base) / 1000.0 * base_intensity
            updates.append(Update(record.id, accounted(actual, counterfactual, energy)))
            if self.metrics is not None:
                self.metrics.carbon_emitted.inc(actual)
                self.metrics.carbon_counterfactual.inc(counterfactual)
                self.metrics.carbon_avoided.inc(max(0.0, counterfactual - actual))
        await self._persist(updates)
        if deferred:
            report.notes.append(f"accounting deferred for {deferred} finished jobs: no intensity data yet")
        clog.info("accounted", extra={"accounted": len(updates), "deferred": deferred})

    async def _intensity_samples(self, zone: str, spans: list[tuple[float, float]]) -> list[IntensitySample]:
        start = datetime.fromtimestamp(min(s for s, _ in spans), UTC)
        end = datetime.fromtimestamp(max(e for _, e in spans), UTC)
        try:
            return await self.carbon.history(zone, start, end)
        except Exception:  # noqa: BLE001 - the hub's cache of earlier forecasts stands in
            rows = await self.store.intensities(zone, start.timestamp(), end.timestamp())
            return [
                IntensitySample(datetime.fromtimestamp(r.start, UTC), r.seconds, r.gco2_per_kwh) for r in rows
            ]

    async def _clean_up(self, clog: CycleLog) -> None:
        """Delete the Jobs of cancelled AppWrappers whose cancel did not reach the dispatcher."""
        records = await self.store.app_wrappers_needing_cleanup()
        clusters = self.directory.clusters()
        done = []
        for record in records:
            message = record.message
            info = clusters.get(message.status.target_cluster)
            if info is None:
                done.append(Update(record.id, mark_cleaned))
                continue
            target = DispatchTarget(
                info.name,
                info.kube_context or info.name,
                message.namespace or info.job_namespace or "default",
            )
            try:
                await self.dispatcher.cancel(record.id, target)
            except Exception as exc:  # noqa: BLE001 - tried again next cycle
                clog.warning("cancel on spoke failed", extra={"app_wrapper": record.id, "error": _short(exc)})
                continue
            done.append(Update(record.id, mark_cleaned))
        await self._persist(done)

    async def _collect(self, now: datetime, clog: CycleLog) -> None:
        """Delete AppWrappers finished longer than the TTL ago (0: keep them)."""
        if self.config.finished_ttl_seconds <= 0:
            return
        collected = await self.store.collect_finished(now.timestamp() - self.config.finished_ttl_seconds)
        if collected:
            clog.info("collected finished AppWrappers", extra={"collected": collected})

    # -- what-if -----------------------------------------------------------------------------------------

    async def preview(self, message: common_pb2.AppWrapper) -> Preview:
        """Where and when `message` would run now, without submitting it, against the current plan."""
        now = self.clock.now()
        now_s = now.timestamp()
        grid = Grid.at(now, self.config.slot_seconds, self.config.horizon_slots)
        registered = self.directory.clusters()
        ready = {
            name: ClusterView(
                info, info.ready, info.not_ready_reason, info.free if info.HasField("free") else None
            )
            for name, info in registered.items()
            if info.ready
        }
        if not ready:
            return Preview(False, reason="no cluster is ready")
        carbon = self._last_carbon
        if carbon is None or carbon.grid != grid:
            carbon = await self._snapshot_carbon(grid, ready, now)
        reservations = []
        for record in await self.store.active_app_wrappers():
            status = record.message.status
            if record.phase not in (SCHEDULED, DISPATCHING, RUNNING) or status.target_cluster not in ready:
                continue
            begin = _seconds(status.started_at) if status.HasField("started_at") else now_s
            if record.phase == SCHEDULED:
                begin = max(now_s, _seconds(status.planned_start))
            first = max(0, grid.slot_index(begin) if record.phase == SCHEDULED else 0)
            end = max(first + 1, grid.slot_index(begin + runtime_of(record.message)))
            if first < grid.slots:
                reservations.append(
                    optimizer_pb2.Reservation(
                        cluster=status.target_cluster,
                        resources=record.message.template.resources,
                        start_slot=first,
                        end_slot=min(end, grid.slots),
                        job_id=record.id,
                    )
                )
        probe = common_pb2.AppWrapper()
        probe.CopyFrom(message)
        probe.id = probe.id or "preview"
        record = AppWrapperRecord(probe)
        urgent = self._preview_urgent(record, ready, reservations, carbon, grid, now_s)
        if urgent is not None:
            return urgent
        request = self._solve_request([record], ready, {}, reservations, carbon, grid, now_s)
        report = CycleReport(self.cycle, now)
        # One attempt only: a what-if should not wait out two optimizer timeouts.
        response = await self._solve(request, report, CycleLog(log, {"cycle": self.cycle}), attempts=1)
        runtime = runtime_of(probe)
        earliest = max(_seconds(probe.earliest_start), now_s)
        baseline = self._baseline(record, ready, carbon, grid, now_s)
        start_now = 0.0
        if baseline is not None:
            info = ready[baseline[0]].info
            start_now, _ = _forecast_run(probe.template.resources, runtime, info, carbon, grid, earliest)
        placement = response.placements[0] if response.placements else None
        problem = _check_placement(placement, request.jobs[0], request, grid)
        if problem:
            return Preview(False, start_now_gco2=start_now, reason=problem)
        start = grid.slot_start(placement.start_slot)
        return Preview(
            True,
            cluster=placement.cluster,
            planned_start=start,
            planned_gco2=placement.gco2,
            start_now_gco2=start_now,
            delay_seconds=max(0.0, start.timestamp() - earliest),
            reason="greedy fallback (optimizer unavailable)" if report.fallback else "",
        )

    def _preview_urgent(
        self,
        record: AppWrapperRecord,
        ready: Mapping[str, ClusterView],
        reservations: Sequence[optimizer_pb2.Reservation],
        carbon: CarbonView,
        grid: Grid,
        now_s: float,
    ) -> Preview | None:
        """The preview of a job too tight for the grid, started off the grid as a cycle would; None for any
        other job."""
        message = record.message
        runtime = runtime_of(message)
        earliest = max(_seconds(message.earliest_start), now_s)
        deadline = _seconds(message.deadline)
        if grid.first_start_at_or_after(earliest) + runtime <= deadline + 1e-6 or earliest >= grid.end_s:
            return None
        if earliest + runtime > deadline + 1e-6:
            why = f"deadline {_iso(deadline)} cannot be met: the earliest start is {_iso(earliest)}"
            return Preview(False, reason=f"{why} and the job runs {runtime:.0f} s")
        usable = tuple(_fitting_clusters(message, {k: v.info for k, v in ready.items()}))
        job = UrgentJob(record.id, message.template.resources, earliest, runtime, deadline, usable)
        placements, _, _ = self._urgent_placements([job], ready, {}, reservations, carbon, grid)
        baseline = self._baseline(record, ready, carbon, grid, now_s, start=earliest)
        start_now = baseline[2] if baseline is not None else 0.0
        if not placements:
            why = "no allowed cluster has room for it now, and it has too little slack to wait for the grid"
            return Preview(False, start_now_gco2=start_now, reason=why)
        [placed] = placements
        return Preview(
            True,
            cluster=placed.cluster,
            planned_start=datetime.fromtimestamp(placed.start, UTC),
            planned_gco2=placed.gco2,
            start_now_gco2=start_now,
            delay_seconds=max(0.0, placed.start - earliest),
            reason="starts at once, off the slot grid: less slack than the wait for the next boundary",
        )


# -- helpers ---------------------------------------------------------------------------------------------


def _fitting_clusters(
    message: common_pb2.AppWrapper, clusters: Mapping[str, common_pb2.ClusterInfo]
) -> list[str]:
    """The clusters the job's affinities allow that are large enough for it, in name order."""
    resources = message.template.resources
    return [n for n in eligible_clusters(message, clusters) if fits(resources, clusters[n].capacity)]


def _forecast_run(
    resources: common_pb2.Resources,
    runtime: float,
    info: common_pb2.ClusterInfo,
    carbon: CarbonView,
    grid: Grid,
    start: float,
) -> tuple[float, float]:
    """(gCO2, Wh) of running `resources` for `runtime` from `start` on a cluster, by the cycle's forecast."""
    intensity = series_mean(
        carbon.series.get(info.zone, []), grid.start_s, grid.slot_seconds, start, start + runtime
    )
    energy = job_energy_wh(resources, runtime, info)
    return energy / 1000.0 * intensity, energy


def _usable_capacity(
    view: ClusterView, running_use: Mapping[str, common_pb2.Resources]
) -> common_pb2.Resources:
    """What CASPIAN jobs may use on a cluster: free now plus what its own running jobs hold (those are
    reserved separately), never more than the registered capacity."""
    capacity = common_pb2.Resources()
    capacity.CopyFrom(view.info.capacity)
    if view.free is not None:
        ours = running_use.get(view.info.name, common_pb2.Resources())
        capacity.cpu_millis = min(capacity.cpu_millis, view.free.cpu_millis + ours.cpu_millis)
        capacity.memory_bytes = min(capacity.memory_bytes, view.free.memory_bytes + ours.memory_bytes)
        capacity.gpus = min(capacity.gpus, view.free.gpus + ours.gpus)
    return capacity


def _check_placement(
    placement: optimizer_pb2.Placement | None,
    job: optimizer_pb2.SolveJob,
    request: optimizer_pb2.SolveRequest,
    grid: Grid,
) -> str:
    """Why a placement cannot be used ('' when it can): unplaced, or breaking the job's constraints."""
    if placement is None:
        return "not placed: the optimizer returned no placement for it"
    if not placement.placed:
        detail = f": {placement.reason}" if placement.reason else ""
        return f"not placed ({_reason_name(placement.unplaced_reason)}){detail}"
    names = {c.name for c in request.clusters}
    allowed = set(job.required_clusters) or names
    if (
        placement.cluster not in names
        or placement.cluster not in allowed
        or placement.cluster in job.excluded_clusters
    ):
        return f"not placed: the optimizer chose a cluster the job may not use ({placement.cluster})"
    if not 0 <= placement.start_slot < grid.slots:
        return f"not placed: the optimizer chose slot {placement.start_slot}, outside the horizon"
    start = grid.start_s + placement.start_slot * grid.slot_seconds
    if start + 1e-6 < _seconds(job.earliest_start):
        return "not placed: the optimizer started it before its earliest start"
    if start + duration_seconds(job.runtime) > _seconds(job.deadline) + 1e-6 and not placement.late:
        return "not placed: the optimizer's start misses the deadline"
    return ""


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
