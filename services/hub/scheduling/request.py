"""Step 3, the request: the placement problem for the optimizer, in its domain types.

The ready clusters with the capacity CASPIAN jobs may use, their zone's forecast on the grid, the capacity
already held (reservations), and the jobs to place, each with its allowed clusters among the ready ones and,
for a job already Scheduled, its current cluster (moving it costs the migration cost) and its current plan as
the optimizer's warm start.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from caspian.v1 import common_pb2
from services.common.timeconv import from_timestamp, timestamp_from_seconds, timestamp_seconds
from services.hub.accounting import power_of
from services.hub.clusters import ClusterView
from services.hub.phases import SCHEDULED
from services.hub.ports import demand_of
from services.hub.scheduling.expected_arrivals import priced_for_arrivals
from services.hub.scheduling.hedging import hedged_series
from services.hub.scheduling.report import SchedulerConfig
from services.hub.scheduling.segment_plan import with_segment_terms
from services.hub.scheduling.snapshot import CycleSnapshot
from services.hub.scheduling.triage import runtime_of
from services.hub.store import AppWrapperRecord
from services.optimizer.problem import Cluster, Forecast, Job, Options, Policy, Problem, Reservation


def usable_capacity(
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


def cycle_policy(config: SchedulerConfig, carbon_blind: bool) -> Policy:
    return Policy.LEAST_LOADED if carbon_blind else config.policy


def build_request(
    records: Sequence[AppWrapperRecord],
    snapshot: CycleSnapshot,
    running_use: Mapping[str, common_pb2.Resources],
    reservations: Sequence[Reservation],
    config: SchedulerConfig,
) -> tuple[Problem, Options]:
    ready, carbon, grid = snapshot.ready, snapshot.carbon, snapshot.grid
    clusters, forecasts = [], []
    for name in sorted(ready):
        info = ready[name].info
        capacity = demand_of(usable_capacity(ready[name], running_use))
        clusters.append(Cluster(name=name, zone=info.zone, capacity=capacity, power=power_of(info)))
        forecasts.append(
            Forecast(
                cluster=name,
                # Far, uncertain slots at their expected value when hedging is on (scheduling/hedging.py).
                gco2_per_kwh=tuple(
                    hedged_series(
                        carbon.series.get(info.zone, [0.0] * grid.slots),
                        carbon.spread.get(info.zone, []),
                        config.hedge_far_slots,
                    )
                ),
                relative_spread=tuple(carbon.spread.get(info.zone, [])),
            )
        )
    names = set(ready)
    now_s = snapshot.now_s
    # The earliest start of every job whose own has passed, converted once.
    now_start = from_timestamp(timestamp_from_seconds(now_s))
    jobs = [_job(record, names, now_s, now_start) for record in records]
    if config.expected_arrivals > 0 and snapshot.demand is not None:
        forecasts = priced_for_arrivals(forecasts, clusters, reservations, snapshot, config.expected_arrivals)
    problem = Problem(
        jobs=tuple(jobs),
        clusters=tuple(clusters),
        grid=grid.domain(),
        forecasts=tuple(forecasts),
        reservations=tuple(r for r in reservations if r.cluster in ready),
    )
    return problem, solve_options(config, carbon.blind)


def solve_options(config: SchedulerConfig, carbon_blind: bool) -> Options:
    return Options(
        policy=cycle_policy(config, carbon_blind),
        time_limit_s=config.solve_time_limit_seconds,
        migration_cost_gco2=config.migration_cost_gco2,
        lateness_gco2_per_slot=config.lateness_gco2_per_slot,
        preferred_discount=config.preferred_discount,
        risk_aversion=config.risk_aversion,
        mip_gap=config.mip_gap,
    )


def _job(record: AppWrapperRecord, names: set[str], now_s: float, now_start: datetime) -> Job:
    message = record.message
    status = message.status
    preferred = tuple(n for n in message.preferred_clusters if n in names)
    current = status.target_cluster if record.phase == SCHEDULED and status.target_cluster in names else ""
    # The job's current plan is the search's warm start (a hint: the optimizer ignores a stale one).
    planned = bool(current) and status.HasField("planned_start")
    earliest_s = timestamp_seconds(message.earliest_start)  # now_start when it has passed
    job = Job(
        id=message.id,
        resources=demand_of(message.template.resources),
        runtime=timedelta(seconds=runtime_of(message)),
        earliest_start=now_start
        if earliest_s <= now_s
        else from_timestamp(timestamp_from_seconds(earliest_s)),
        deadline=from_timestamp(message.deadline),
        required_clusters=tuple(n for n in message.required_clusters if n in names),
        preferred_clusters=preferred,
        excluded_clusters=tuple(n for n in message.excluded_clusters if n in names),
        priority=message.priority,
        current_cluster=current,
        # Temporal-only keeps a job on its home: its first preferred cluster, else the optimizer's stable
        # spread over the allowed clusters.
        home_cluster=preferred[0] if preferred else "",
        previous_cluster=current if planned else "",
        previous_start=from_timestamp(status.planned_start) if planned else None,
    )
    return with_segment_terms(job, record, names)
