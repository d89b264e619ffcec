"""One scheduling cycle as numbered steps; `Scheduler.tick()` owns no timing (loop.py does).

    1 snapshot        clusters (probed through the registry), carbon per zone, active AppWrappers: once
    2 triage          what holds capacity, what can never run, what waits, what is off-grid, what to solve
    3 off-grid        jobs too tight for the grid start at once; their reservations join the others
    4 request         the placement problem in the optimizer's domain types
    5 solving         in windows of at most the optimizer's MAX_JOBS, most urgent first (windows.py): the
                      optimizer's plan (its own solve() in-process when the service fails), checked;
      counterfactual  each newly planned job's carbon-agnostic placement: its run in the optimizer's
                      least-loaded plan of the same problem, which the answer carries (solved in-process
                      only when an answer lacks it)
    6 persist         every change, conditional on the revision the snapshot read (a Cancel mid-cycle wins)
    7 gates           every job whose start has come goes to the dispatcher; interruptible jobs are
                      suspended and resumed at their segments' ends and starts (segment_gates.py)
    8 accounting      actual and counterfactual gCO2 of finished runs
    9 housekeeping    Jobs of cancelled AppWrappers, finished AppWrappers past their TTL, the change log

The cycle number is in every log line and in the `caspian_schedule_cycle` gauge. Everything outside the hub
is reached through ports, so an offline evaluation runs this class in-process on its own clock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from datetime import datetime

from caspian.v1 import common_pb2
from services.common.clock import Clock
from services.hub import lifecycle
from services.hub.clusters import ClusterRegistry
from services.hub.grid import Grid
from services.hub.lifecycle import Baseline
from services.hub.local_optimizer import LocalOptimizer
from services.hub.metrics import HubMetrics
from services.hub.peerclocks import PeerClocks
from services.hub.phases import SCHEDULED
from services.hub.ports import CarbonPort, DispatcherPort, OptimizerPort
from services.hub.scheduling import preview as previews
from services.hub.scheduling.accounting import Accountant
from services.hub.scheduling.counterfactual import counterfactuals
from services.hub.scheduling.expected_arrivals import ArrivalHistory
from services.hub.scheduling.gates import Gates
from services.hub.scheduling.housekeeping import Housekeeping
from services.hub.scheduling.offgrid import place_off_grid
from services.hub.scheduling.report import CycleLog, CycleReport, Preview, SchedulerConfig
from services.hub.scheduling.request import build_request
from services.hub.scheduling.snapshot import CarbonSnapshots, CycleSnapshot
from services.hub.scheduling.solving import Solver, placement_updates
from services.hub.scheduling.triage import triage
from services.hub.scheduling.windows import booked as booked_by
from services.hub.scheduling.windows import windows
from services.hub.store import AppWrapperRecord, Store, Update
from services.optimizer.problem import Policy, Reservation

log = logging.getLogger("caspian.hub.scheduler")


class Scheduler:
    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        carbon: CarbonPort,
        optimizer: OptimizerPort,
        dispatcher: DispatcherPort,
        clusters: ClusterRegistry,
        config: SchedulerConfig | None = None,
        metrics: HubMetrics | None = None,
        fallback: OptimizerPort | None = None,
        peer_clocks: PeerClocks | None = None,
    ):
        config = config or SchedulerConfig()
        self.store = store
        self.clock = clock
        self.dispatcher = dispatcher
        self.clusters = clusters
        self.metrics = metrics
        self.carbon = CarbonSnapshots(carbon, store, config)
        local = LocalOptimizer()
        self.solver = Solver(
            optimizer, fallback if fallback is not None else local, config.solve_deadline_seconds
        )
        # The carbon-agnostic reference for counterfactuals, the optimizer's least-loaded plan, in-process:
        # solved only for an answer that does not carry it (counterfactual.py).
        self.reference: OptimizerPort = local
        self.gates = Gates(store, clusters, dispatcher, clock, config, metrics)
        self.accountant = Accountant(store, clusters, carbon, metrics)
        self.housekeeping = Housekeeping(store, clusters, dispatcher, config)
        self._config = config
        # The skew of the services' clocks, measured on every call to them; a note while over the limit.
        self.peer_clocks = peer_clocks
        self.cycle = 0
        self.last_report: CycleReport | None = None
        # The jobs seen arrive, for the demand forecast (scheduling/expected_arrivals.py); in memory only.
        self.arrivals = ArrivalHistory()

    def use_store(self, store: Store) -> None:
        """Every step writes through `store` from now on (with several replicas: the leader's fenced store)."""
        self.store = self.gates.store = self.accountant.store = self.housekeeping.store = store

    @property
    def config(self) -> SchedulerConfig:
        return self._config

    @config.setter
    def config(self, config: SchedulerConfig) -> None:
        self._config = config
        self.carbon.config = self.gates.config = self.housekeeping.config = config
        self.solver.deadline_seconds = config.solve_deadline_seconds

    async def tick(self) -> CycleReport:
        self.cycle = await self.store.next_cycle()
        clog = CycleLog(log, {"cycle": self.cycle})
        now = self.clock.now()
        report = CycleReport(self.cycle, now, policy=self.config.policy)
        began = time.perf_counter()
        try:
            snapshot = await self.snapshot(now, report)
            await self.plan(snapshot, report, clog)
            report.dispatched = await self.gates.dispatch_due(self.cycle, clog)
            await self.accountant.account(report, clog)
            await self.housekeeping.run(now, clog)
            if report.fallback:
                report.outcome = "fallback"
            elif report.considered == 0:
                report.outcome = "idle"
        except Exception as exc:  # noqa: BLE001 - a failed cycle is reported and retried by the loop
            report.outcome = "error"
            report.notes.append(f"cycle failed: {type(exc).__name__}: {exc}")
            clog.exception("cycle failed")
        if self.peer_clocks is not None:
            report.notes.extend(self.peer_clocks.notes())
        report.duration_seconds = time.perf_counter() - began
        self._observe(report, clog)
        self.last_report = report
        return report

    async def snapshot(self, now: datetime, report: CycleReport) -> CycleSnapshot:
        """Step 1."""
        grid = Grid.at(now, self.config.slot_seconds, self.config.horizon_slots)
        probed = await self.clusters.refresh(self.dispatcher, now)
        report.notes.extend(probed.notes)
        carbon = await self.carbon.view(grid, probed.views, now)
        report.carbon_stale, report.carbon_blind = carbon.stale, carbon.blind
        report.notes.extend(carbon.notes)
        if carbon.blind:
            report.policy = Policy.LEAST_LOADED
            report.notes.append("carbon-blind: forecasts missing or too old; placing least-loaded")
        records = await self.store.active_app_wrappers()
        demand = None
        if self.config.expected_arrivals > 0:
            self.arrivals.observe_records(now.timestamp(), records, grid.slots * grid.slot_seconds)
            demand = self.arrivals.model(now.timestamp())
        return CycleSnapshot(now, grid, probed.views, carbon, records, demand)

    async def plan(self, snapshot: CycleSnapshot, report: CycleReport, clog: logging.LoggerAdapter) -> None:
        """Steps 2 to 6."""
        sorted_out = triage(snapshot, self.cycle)
        report.unschedulable += sorted_out.unschedulable
        report.unplaced += sorted_out.waiting
        updates = sorted_out.updates
        reservations = sorted_out.reservations
        report.considered = len(sorted_out.to_solve) + len(sorted_out.off_grid)
        if sorted_out.off_grid:
            placed, booked = await place_off_grid(
                sorted_out.off_grid,
                snapshot,
                sorted_out.running_use,
                reservations,
                self.config,
                self.reference,
                report,
                self.cycle,
            )
            updates.extend(placed)
            reservations.extend(booked)
        if sorted_out.to_solve:
            updates.extend(
                await self.solve_windows(
                    sorted_out.to_solve, snapshot, sorted_out.running_use, reservations, report, clog
                )
            )
        await lifecycle.commit(self.store, updates)

    async def solve_windows(
        self,
        to_solve: Sequence[AppWrapperRecord],
        snapshot: CycleSnapshot,
        running_use: Mapping[str, common_pb2.Resources],
        reservations: Sequence[Reservation],
        report: CycleReport,
        clog: logging.LoggerAdapter,
    ) -> list[Update]:
        """Step 5: the jobs to solve in windows the optimizer takes (scheduling/windows.py), most urgent first,
        each window's placements reserved for the next; all within one solve deadline."""
        parts = windows(to_solve, self.config.solve_max_jobs)
        budget = self.config.solve_deadline_seconds
        ends = time.monotonic() + budget if budget > 0 else None
        booked_so_far = list(reservations)
        updates: list[Update] = []
        solved = 0
        for index, window in enumerate(parts):
            left = None if ends is None else ends - time.monotonic()
            if index > 0 and left is not None and left <= 0:
                updates.extend(self._defer(parts[index:], index, len(parts), report))
                break
            problem, options = build_request(window, snapshot, running_use, booked_so_far, self.config)
            result = await self.solver.solve(problem, options, report, clog, deadline_seconds=left)
            agnostic: Mapping[str, Baseline] = {}
            if any(not r.baseline_cluster for r in window):
                agnostic = await counterfactuals(result, problem, options, snapshot.grid, self.reference)
            updates.extend(placement_updates(window, problem, result, snapshot, report, self.cycle, agnostic))
            booked_so_far.extend(booked_by(problem, result, snapshot.grid))
            solved += 1
        if len(parts) > 1:
            report.notes.append(
                f"{len(to_solve)} jobs to plan, over the optimizer's {self.config.solve_max_jobs} per request: "
                f"solved in {solved} of {len(parts)} windows, most urgent first"
            )
        return updates

    def _defer(
        self, rest: Sequence[Sequence[AppWrapperRecord]], done: int, total: int, report: CycleReport
    ) -> list[Update]:
        """Windows not started within the solve deadline: their jobs keep their plan or wait for the next cycle."""
        deferred = [r for part in rest for r in part]
        report.notes.append(
            f"{len(deferred)} jobs wait for the next cycle: the solve deadline was spent after {done} of "
            f"{total} windows"
        )
        waiting = [r for r in deferred if r.phase != SCHEDULED]
        report.unplaced += len(waiting)
        reason = "waiting for the next cycle: this cycle's solve deadline was spent on more urgent jobs"
        return [lifecycle.waiting(r, reason=reason, cycle=self.cycle) for r in waiting]

    async def dispatch_due(self, clog: logging.LoggerAdapter | None = None) -> int:
        """Step 7 alone, for the loop to open gates between cycles."""
        return await self.gates.dispatch_due(self.cycle, clog)

    async def next_gate_after(self, now: datetime) -> datetime | None:
        return await self.gates.next_gate_after(now)

    async def preview(self, message: common_pb2.AppWrapper) -> Preview:
        return await previews.preview(
            message,
            now=self.clock.now(),
            cycle=self.cycle,
            store=self.store,
            clusters=self.clusters,
            carbon=self.carbon,
            solver=self.solver,
            local=self.reference,
            config=self.config,
        )

    def _observe(self, report: CycleReport, clog: logging.LoggerAdapter) -> None:
        if self.metrics is not None:
            self.metrics.cycle_seconds.observe(report.duration_seconds)
            self.metrics.cycles.labels(report.outcome).inc()
            self.metrics.last_cycle.set(report.cycle)
            self.metrics.carbon_stale.set(1 if report.carbon_stale else 0)
            self.metrics.carbon_blind.set(1 if report.carbon_blind else 0)
            if report.fallback:
                self.metrics.optimizer_fallbacks.inc()
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
