"""Request checks: a bad problem raises InvalidArgument naming the field path, before any solving."""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass

from services.common.errors import InvalidArgument
from services.common.jobrules import (
    MIN_RUNTIME_SECONDS,
    clusters_problem,
    resources_problem,
    window_problem,
)
from services.common.limits import MAX_RELATIVE_SPREAD, MAX_RISK_AVERSION
from services.optimizer.problem import Job, Options, Problem, Resources


@dataclass(frozen=True)
class Limits:
    max_jobs: int = 20_000
    max_slots: int = 2016
    max_clusters: int = 64
    # jobs x clusters x slots: the option arrays grow with it (8 bytes a cell)
    max_option_cells: int = 40_000_000


def _resources(value: Resources, path: str) -> None:
    for name in ("cpu_millis", "memory_bytes", "gpus"):
        if getattr(value, name) < 0:
            raise InvalidArgument(f"must not be negative, got {getattr(value, name)}", field=f"{path}.{name}")


def _interruptible(job: Job, path: str) -> None:
    if job.remaining_runtime is not None:
        left = job.remaining_runtime.total_seconds()
        if left < 0 or left > job.runtime.total_seconds():
            raise InvalidArgument(f"must be in [0, runtime], got {left:g} s", f"{path}.remaining_runtime")
    if job.pauses_taken < 0:
        raise InvalidArgument(f"must not be negative, got {job.pauses_taken}", f"{path}.pauses_taken")
    rule = job.interruptible
    if rule is None:
        return
    if rule.resume_overhead.total_seconds() < 0:
        raise InvalidArgument("must not be negative", f"{path}.interruptible.resume_overhead")
    if rule.min_segment.total_seconds() < 0:
        raise InvalidArgument("must not be negative", f"{path}.interruptible.min_segment")
    if rule.max_pauses is not None and rule.max_pauses < 0:
        raise InvalidArgument(
            f"must not be negative, got {rule.max_pauses}", f"{path}.interruptible.max_pauses"
        )


def check_job(job: Job, clusters: Collection[str], path: str) -> None:
    """The shared job rule (services/common/jobrules.py) on one job; InvalidArgument names the field."""
    problem = resources_problem(*job.resources.as_tuple())
    if problem is not None:
        raise InvalidArgument(problem[1], field=f"{path}.resources.{problem[0]}")
    runtime_s = job.runtime.total_seconds()
    if runtime_s < MIN_RUNTIME_SECONDS:
        raise InvalidArgument(
            f"must be at least {MIN_RUNTIME_SECONDS:g} s, got {runtime_s:g} s", f"{path}.runtime"
        )
    _interruptible(job, path)
    earliest = job.earliest_start.timestamp() if job.earliest_start is not None else None
    deadline = job.deadline.timestamp() if job.deadline is not None else None
    problem = window_problem(earliest, deadline) or clusters_problem(
        (
            ("required_clusters", job.required_clusters),
            ("preferred_clusters", job.preferred_clusters),
            ("excluded_clusters", job.excluded_clusters),
            ("current_cluster", (job.current_cluster,) if job.current_cluster else ()),
            ("home_cluster", (job.home_cluster,) if job.home_cluster else ()),
        ),
        clusters,
    )
    if problem is not None:
        field = (
            problem[0]
            .replace("current_cluster[0]", "current_cluster")
            .replace("home_cluster[0]", "home_cluster")
        )
        raise InvalidArgument(problem[1], field=f"{path}.{field}")


def validate_problem(problem: Problem, limits: Limits) -> None:
    grid = problem.grid
    if grid.slot.total_seconds() <= 0:
        raise InvalidArgument("slot length must be above zero", field="grid.slot")
    if grid.slots < 1:
        raise InvalidArgument(f"must be at least 1, got {grid.slots}", field="grid.slots")
    if grid.slots > limits.max_slots:
        raise InvalidArgument(f"at most {limits.max_slots} slots, got {grid.slots}", field="grid.slots")

    if not problem.clusters:
        raise InvalidArgument("at least one cluster is needed", field="clusters")
    if len(problem.clusters) > limits.max_clusters:
        raise InvalidArgument(
            f"at most {limits.max_clusters} clusters, got {len(problem.clusters)}", "clusters"
        )
    names: set[str] = set()
    for i, cluster in enumerate(problem.clusters):
        if not cluster.name:
            raise InvalidArgument("must not be empty", field=f"clusters[{i}].name")
        if cluster.name in names:
            raise InvalidArgument(f"duplicate cluster {cluster.name!r}", field=f"clusters[{i}].name")
        names.add(cluster.name)
        _resources(cluster.capacity, f"clusters[{i}].capacity")
        for name in ("idle_watts", "peak_watts", "watts_per_core", "watts_per_gpu", "watts_per_gib", "pue"):
            value = getattr(cluster.power, name)
            if not math.isfinite(value) or value < 0:
                raise InvalidArgument(
                    f"must be a finite number >= 0, got {value}", f"clusters[{i}].power.{name}"
                )

    covered: set[str] = set()
    for i, forecast in enumerate(problem.forecasts):
        if forecast.cluster not in names:
            raise InvalidArgument(f"unknown cluster {forecast.cluster!r}", field=f"forecasts[{i}].cluster")
        if forecast.cluster in covered:
            raise InvalidArgument(
                f"second forecast for {forecast.cluster!r}", field=f"forecasts[{i}].cluster"
            )
        covered.add(forecast.cluster)
        if len(forecast.gco2_per_kwh) < grid.slots:
            raise InvalidArgument(
                f"{len(forecast.gco2_per_kwh)} values for a horizon of {grid.slots} slots",
                field=f"forecasts[{i}].gco2_per_kwh",
            )
        spread = forecast.relative_spread
        if spread and len(spread) < grid.slots:
            raise InvalidArgument(
                f"{len(spread)} values for a horizon of {grid.slots} slots (or none: exact)",
                field=f"forecasts[{i}].relative_spread",
            )
        for t, value in enumerate(spread[: grid.slots]):
            if not (math.isfinite(value) and 0 <= value <= MAX_RELATIVE_SPREAD):
                raise InvalidArgument(
                    f"must be a number in [0, {MAX_RELATIVE_SPREAD:g}], got {value}",
                    f"forecasts[{i}].relative_spread[{t}]",
                )
        for t, value in enumerate(forecast.gco2_per_kwh[: grid.slots]):
            if not math.isfinite(value) or value < 0:
                raise InvalidArgument(
                    f"must be a finite number >= 0, got {value}", f"forecasts[{i}].gco2_per_kwh[{t}]"
                )
    for cluster in problem.clusters:
        if cluster.name not in covered:
            raise InvalidArgument(f"no forecast for cluster {cluster.name!r}", field="forecasts")

    if len(problem.jobs) > limits.max_jobs:
        raise InvalidArgument(f"at most {limits.max_jobs} jobs per request, got {len(problem.jobs)}", "jobs")
    cells = len(problem.jobs) * len(problem.clusters) * grid.slots
    if cells > limits.max_option_cells:
        raise InvalidArgument(
            f"jobs x clusters x slots is {cells}, above the limit of {limits.max_option_cells}; "
            "send fewer jobs or a shorter grid",
            "jobs",
        )
    ids: set[str] = set()
    for i, job in enumerate(problem.jobs):
        path = f"jobs[{i}]"
        if not job.id:
            raise InvalidArgument("must not be empty", field=f"{path}.id")
        if job.id in ids:
            raise InvalidArgument(f"duplicate job id {job.id!r}", field=f"{path}.id")
        ids.add(job.id)
        check_job(job, names, path)

    for i, reservation in enumerate(problem.reservations):
        path = f"reservations[{i}]"
        if reservation.cluster not in names:
            raise InvalidArgument(f"unknown cluster {reservation.cluster!r}", field=f"{path}.cluster")
        _resources(reservation.resources, f"{path}.resources")
        if reservation.start_slot < 0:
            raise InvalidArgument("must not be negative", field=f"{path}.start_slot")
        if reservation.end_slot < reservation.start_slot:
            raise InvalidArgument("is before start_slot", field=f"{path}.end_slot")


def validate_options(options: Options) -> None:
    if not math.isfinite(options.time_limit_s) or options.time_limit_s <= 0:
        raise InvalidArgument("must be above zero", field="options.time_limit")
    for name in ("migration_cost_gco2", "lateness_gco2_per_slot"):
        value = getattr(options, name)
        if not math.isfinite(value) or value < 0:
            raise InvalidArgument(f"must be a finite number >= 0, got {value}", field=f"options.{name}")
    if not 0 <= options.preferred_discount < 1:
        raise InvalidArgument(
            f"must be in [0, 1), got {options.preferred_discount}", field="options.preferred_discount"
        )
    if not 0 <= options.mip_gap < 1:
        raise InvalidArgument(f"must be in [0, 1), got {options.mip_gap}", field="options.mip_gap")
    if not (math.isfinite(options.risk_aversion) and 0 <= options.risk_aversion <= MAX_RISK_AVERSION):
        raise InvalidArgument(
            f"must be in [0, {MAX_RISK_AVERSION:g}], got {options.risk_aversion}",
            field="options.risk_aversion",
        )
