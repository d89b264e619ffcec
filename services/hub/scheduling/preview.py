"""PreviewSchedule: where and when a job would run now, against the current plan, without submitting it.

An interruptible job is planned in segments (their run time from `runtime` plus the overheads) and compared with
the best plan of the same job in one piece (a second solve of the same request with its segment terms off).

It reuses the cycle's builders (a snapshot from the registry's last probes, `reservations_of`, the off-grid
placement, `build_request`, the solver and the counterfactual) and writes nothing: no store change, and the
forecast it may fetch is not cached.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from caspian.v1 import common_pb2
from services.common.timeconv import no_later_than, timestamp_seconds
from services.hub.clusters import ClusterRegistry, ClusterView
from services.hub.grid import Grid
from services.hub.phases import DISPATCHING, RUNNING, SCHEDULED
from services.hub.ports import OptimizerPort
from services.hub.scheduling.counterfactual import baseline, forecast_run
from services.hub.scheduling.offgrid import off_grid_placements
from services.hub.scheduling.report import CycleLog, CycleReport, Preview, SchedulerConfig, iso
from services.hub.scheduling.request import build_request
from services.hub.scheduling.segment_plan import in_one_piece, planned_spans
from services.hub.scheduling.snapshot import CarbonSnapshots, CycleSnapshot
from services.hub.scheduling.solving import Solver, check_placement
from services.hub.scheduling.triage import (
    OffGridJob,
    earliest_of,
    fitting_clusters,
    reservations_of,
    runtime_of,
)
from services.hub.store import AppWrapperRecord, Store
from services.optimizer.problem import Reservation

log = logging.getLogger("caspian.hub.scheduler")


async def preview(
    message: common_pb2.AppWrapper,
    *,
    now: datetime,
    cycle: int,
    store: Store,
    clusters: ClusterRegistry,
    carbon: CarbonSnapshots,
    solver: Solver,
    local: OptimizerPort,
    config: SchedulerConfig,
) -> Preview:
    grid = Grid.at(now, config.slot_seconds, config.horizon_slots)
    ready = {
        name: ClusterView(
            info, info.ready, info.not_ready_reason, info.free if info.HasField("free") else None
        )
        for name, info in clusters.clusters().items()
        if info.ready
    }
    if not ready:
        return Preview(False, reason="no cluster is ready")
    view = carbon.last
    # The last cycle's view, unless it is for another grid or lacks a zone (a cluster registered since).
    if view is None or view.grid != grid or any(v.info.zone not in view.series for v in ready.values()):
        view = await carbon.view(grid, ready, now, cache=False)
    records = await store.active_app_wrappers()
    snapshot = CycleSnapshot(now, grid, ready, view, records)
    reservations = [
        r
        for record in records
        if record.phase in (SCHEDULED, DISPATCHING, RUNNING) and record.message.status.target_cluster in ready
        for r in reservations_of(record, grid, snapshot.now_s)
    ]
    probe = common_pb2.AppWrapper()
    probe.CopyFrom(message)
    probe.id = probe.id or "preview"
    record = AppWrapperRecord(probe)
    off_grid = await _preview_off_grid(record, snapshot, reservations, config, local)
    if off_grid is not None:
        return off_grid
    problem, options = build_request([record], snapshot, {}, reservations, config)
    report = CycleReport(cycle, now)
    # One attempt only: a what-if should not wait out two optimizer timeouts.
    result = await solver.solve(problem, options, report, CycleLog(log, {"cycle": cycle}), attempts=1)
    runtime = runtime_of(probe)
    earliest = earliest_of(probe, snapshot.now_s)
    agnostic = baseline(record, snapshot)
    start_now = 0.0
    start_now_cluster = agnostic.cluster if agnostic is not None else ""
    if agnostic is not None:
        info = ready[agnostic.cluster].info
        start_now, _ = forecast_run(probe.template.resources, runtime, info, view, grid, earliest)
    placement = result.placements[0] if result.placements else None
    why = check_placement(placement, problem.jobs[0], problem, grid)
    if why or placement is None:
        return Preview(False, start_now_gco2=start_now, start_now_cluster=start_now_cluster, reason=why)
    start = grid.slot_start(placement.start_slot)
    job = problem.jobs[0]
    one_piece_start: datetime | None = start
    one_piece_gco2 = placement.gco2
    if job.interruptible is not None:
        # The comparison: the best plan of the same job in one piece, from the same solver.
        whole = in_one_piece(problem)
        answer = await solver.solve(whole, options, report, CycleLog(log, {"cycle": cycle}), attempts=1)
        piece = answer.placements[0] if answer.placements else None
        if piece is None or check_placement(piece, whole.jobs[0], whole, grid):
            one_piece_start, one_piece_gco2 = None, 0.0
        else:
            one_piece_start, one_piece_gco2 = grid.slot_start(piece.start_slot), piece.gco2
    return Preview(
        True,
        cluster=placement.cluster,
        planned_start=start,
        planned_gco2=placement.gco2,
        start_now_gco2=start_now,
        start_now_cluster=start_now_cluster,
        delay_seconds=max(0.0, start.timestamp() - earliest),
        reason="greedy fallback (optimizer unavailable)" if report.fallback else "",
        segments=tuple(planned_spans(placement, job, grid)),
        one_piece_start=one_piece_start,
        one_piece_gco2=one_piece_gco2,
        interruptible=job.interruptible is not None,
    )


async def _preview_off_grid(
    record: AppWrapperRecord,
    snapshot: CycleSnapshot,
    reservations: list[Reservation],
    config: SchedulerConfig,
    local: OptimizerPort,
) -> Preview | None:
    """The preview of a job too tight for the grid, started off the grid as a cycle would; None for any
    other job."""
    message = record.message
    grid = snapshot.grid
    runtime = runtime_of(message)
    earliest = earliest_of(message, snapshot.now_s)
    deadline = timestamp_seconds(message.deadline)
    if no_later_than(grid.first_start_at_or_after(earliest) + runtime, deadline) or earliest >= grid.end_s:
        return None
    if not no_later_than(earliest + runtime, deadline):
        why = f"deadline {iso(deadline)} cannot be met: the earliest start is {iso(earliest)}"
        return Preview(False, reason=f"{why} and the job runs {runtime:.0f} s")
    usable = tuple(fitting_clusters(message, snapshot.registered))
    job = OffGridJob(record.id, message.template.resources, earliest, runtime, deadline, usable)
    placements, _, _ = await off_grid_placements([job], snapshot, {}, reservations, config, local)
    agnostic = baseline(record, snapshot, start=earliest)
    start_now = agnostic.gco2 if agnostic is not None else 0.0
    start_now_cluster = agnostic.cluster if agnostic is not None else ""
    if not placements:
        why = "no allowed cluster has room for it now, and it has too little slack to wait for the grid"
        return Preview(False, start_now_gco2=start_now, start_now_cluster=start_now_cluster, reason=why)
    [placed] = placements
    return Preview(
        True,
        cluster=placed.cluster,
        planned_start=datetime.fromtimestamp(placed.start, UTC),
        planned_gco2=placed.gco2,
        start_now_gco2=start_now,
        start_now_cluster=start_now_cluster,
        delay_seconds=max(0.0, placed.start - earliest),
        reason="starts at once, off the slot grid: less slack than the wait for the next boundary",
    )
