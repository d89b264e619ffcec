"""Step 4, solving: the optimizer's plan for the request, checked, and turned into AppWrapper changes.

The optimizer is asked twice at most, both attempts within one solve deadline (`deadline_seconds`, the
hub's CASPIAN_HUB_OPTIMIZER_TIMEOUT_SECONDS: a retry gets what the first attempt left, so a hung optimizer
costs a cycle that deadline once, not twice); when it is down, times out or finds no solution in time, the hub runs
the optimizer's own solve() in-process with a fast heuristic policy (local_optimizer.py): the optimizer owns
every placement. Each placement is checked against the job's constraints before it is used.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from services.common.timeconv import no_later_than
from services.hub import lifecycle
from services.hub.grid import Grid
from services.hub.lifecycle import Baseline
from services.hub.local_optimizer import fallback_policy
from services.hub.phases import SUSPENDED
from services.hub.ports import OptimizerPort
from services.hub.scheduling.counterfactual import baseline
from services.hub.scheduling.report import CycleReport, short
from services.hub.scheduling.segment_plan import check_segments, planned_spans, work_of
from services.hub.scheduling.snapshot import CycleSnapshot
from services.hub.store import AppWrapperRecord, Update
from services.optimizer.problem import Job, Options, Placement, Problem, Result, Status, UnplacedReason


@dataclass
class Solver:
    optimizer: OptimizerPort
    fallback: OptimizerPort
    # One deadline for every attempt of a solve, in real seconds (0: each call's own deadline only).
    deadline_seconds: float = 0.0

    async def solve(
        self,
        problem: Problem,
        options: Options,
        report: CycleReport,
        clog: logging.LoggerAdapter,
        attempts: int = 2,
        deadline_seconds: float | None = None,
    ) -> Result:
        """The optimizer's answer; after `attempts` failures the optimizer's solve() in-process. All attempts
        share one deadline: `deadline_seconds` (what a cycle has left) or else the solver's own."""
        failures = []
        budget = self.deadline_seconds if deadline_seconds is None else max(0.001, deadline_seconds)
        ends = time.monotonic() + budget if budget > 0 else None
        for attempt in range(1, attempts + 1):
            left = None if ends is None else ends - time.monotonic()
            if left is not None and left <= 0:
                failures.append(f"the solve deadline ({budget:g} s) is spent")
                break
            try:
                result = await asyncio.wait_for(self.optimizer.solve(problem, options), left)
            except TimeoutError:
                failures.append(f"no answer within the solve deadline ({budget:.3g} s)")
                clog.warning("optimizer timed out", extra={"attempt": attempt})
                continue
            except Exception as exc:  # noqa: BLE001 - down or timed out: retry once, then fall back
                failures.append(short(exc))
                clog.warning("optimizer failed", extra={"attempt": attempt, "error": short(exc)})
                continue
            if result.status == Status.NO_SOLUTION_IN_TIME:
                failures.append("no solution in time")
                clog.warning("optimizer found no solution in time", extra={"attempt": attempt})
                continue
            return result
        report.fallback = True
        policy = fallback_policy(options.policy, report.carbon_blind)
        times = "twice" if attempts == 2 else f"{attempts} times" if attempts > 1 else "once"
        report.notes.append(
            f"optimizer failed {times} ({'; '.join(failures)}); greedy fallback placement "
            f"(in-process {policy.value})"
        )
        return await self.fallback.solve(problem, replace(options, policy=policy))


def placement_updates(
    records: Sequence[AppWrapperRecord],
    problem: Problem,
    result: Result,
    snapshot: CycleSnapshot,
    report: CycleReport,
    cycle: int,
    agnostic: Mapping[str, Baseline],
) -> list[Update]:
    """Each job's placement as a change: Scheduled where it was placed (with its counterfactual on the first
    plan, from `agnostic`), back to Pending with the reason where it was not or the placement breaks its
    constraints."""
    # Summed over a cycle's windows (scheduling/windows.py); the worst status and gap stand for them all.
    if report.solve_status is None or result.status != Status.OPTIMAL:
        report.solve_status = result.status
    report.planned_gco2 += result.emissions_gco2
    report.agnostic_gco2 += result.agnostic_gco2
    report.gap = max(report.gap, result.gap)
    report.policy = result.policy
    grid = snapshot.grid
    placements = {p.job_id: p for p in result.placements}
    jobs = {j.id: j for j in problem.jobs}
    names = {c.name for c in problem.clusters}
    updates = []
    for record in records:
        placement = placements.get(record.id)
        why = check_placement(placement, jobs[record.id], problem, grid, names)
        if why or placement is None:
            report.unplaced += 1
            if record.phase == SUSPENDED:
                # Its progress is kept: it resumes now for the work left rather than wait (segment_plan.py).
                updates.append(
                    lifecycle.change(
                        record.id,
                        lifecycle.unplaced_suspended,
                        revision=record.revision,
                        reason=f"resuming at once: {why}",
                        now_s=snapshot.now_s,
                        cycle=cycle,
                    )
                )
                continue
            updates.append(lifecycle.waiting(record, reason=why, cycle=cycle))
            continue
        report.planned += 1
        agnostic_placement = None if record.baseline_cluster else agnostic.get(record.id)
        update = lifecycle.placed(
            record,
            cluster=placement.cluster,
            start_s=grid.start_s + placement.start_slot * grid.slot_seconds,
            gco2=placement.gco2,
            energy_wh=placement.energy_wh,
            baseline=agnostic_placement or (None if record.baseline_cluster else baseline(record, snapshot)),
            cycle=cycle,
            segments=planned_spans(placement, jobs[record.id], grid),
        )
        if update is not None:  # None: the job keeps the plan it has
            updates.append(update)
    return updates


def reason_name(reason: UnplacedReason | None) -> str:
    return reason.value.replace("_", " ") if reason is not None else "unplaced reason unspecified"


def check_placement(
    placement: Placement | None, job: Job, problem: Problem, grid: Grid, names: set[str] | None = None
) -> str:
    """Why a placement cannot be used ('' when it can): unplaced, or breaking the job's constraints. `names`:
    the problem's cluster names, when the caller checks many placements of one problem."""
    if placement is None:
        return "not placed: the optimizer returned no placement for it"
    if not placement.placed:
        detail = f": {placement.detail}" if placement.detail else ""
        return f"not placed ({reason_name(placement.reason)}){detail}"
    if names is None:
        names = {c.name for c in problem.clusters}
    allowed = set(job.required_clusters) or names
    if (
        placement.cluster not in names
        or placement.cluster not in allowed
        or placement.cluster in job.excluded_clusters
    ):
        return f"not placed: the optimizer chose a cluster the job may not use ({placement.cluster})"
    if placement.segments:
        return check_segments(placement, job, grid)
    if not 0 <= placement.start_slot < grid.slots:
        return f"not placed: the optimizer chose slot {placement.start_slot}, outside the horizon"
    start = grid.start_s + placement.start_slot * grid.slot_seconds
    if job.earliest_start is not None and not no_later_than(job.earliest_start.timestamp(), start):
        return "not placed: the optimizer started it before its earliest start"
    if (
        job.deadline is not None
        and not placement.late
        and not no_later_than(start + work_of(job), job.deadline.timestamp())
    ):
        return "not placed: the optimizer's start misses the deadline"
    return ""
