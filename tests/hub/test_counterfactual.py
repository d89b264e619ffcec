"""One carbon-agnostic reference: a cycle's agnostic figure (the optimizer's) is the sum of the per-job
counterfactuals the hub keeps for the jobs it planned, on the same plan (the real optimizer, in-process),
whether the optimizer's answer carries each job's run in that plan or the hub has to solve it itself."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from caspian.v1 import common_pb2
from services.common.clock import ManualClock
from services.common.timeconv import to_duration, to_timestamp
from services.hub.clusters import ClusterRegistry
from services.hub.inprocess import HourlyCarbon, InstantDispatcher
from services.hub.local_optimizer import LocalOptimizer
from services.hub.metrics import HubMetrics
from services.hub.phases import SCHEDULED
from services.hub.scheduling import Scheduler, SchedulerConfig
from services.hub.store import NewAppWrapper, SqliteStore
from services.hub.validation import Limits
from services.optimizer.problem import Options, Policy, Problem, Result

START = datetime(2023, 6, 1, tzinfo=UTC)
GIB = 1 << 30
ZONES = {"east": "KR", "west": "JP-TK", "south": "CN"}
# Hourly intensities that differ by zone and hour, so cluster and start both matter.
LEVEL = {"KR": 400.0, "JP-TK": 500.0, "CN": 600.0}


def intensity(zone: str, hour_start: float) -> float:
    hour = int((hour_start - START.timestamp()) // 3600)
    return LEVEL[zone] - 40.0 * (hour % 6)


def job(i: int) -> common_pb2.AppWrapper:
    earliest = START + timedelta(minutes=20 * i)
    runtime = 1800 + 600 * (i % 4)
    message = common_pb2.AppWrapper(
        id=f"job-{i}",
        name=f"job-{i}",
        tenant="t",
        template=common_pb2.JobTemplate(
            image="ghcr.io/caspian/sleep:1.0",
            resources=common_pb2.Resources(cpu_millis=1000 * (1 + i % 3), memory_bytes=2 * GIB),
            expected_runtime=to_duration(runtime),
        ),
        earliest_start=to_timestamp(earliest),
        deadline=to_timestamp(earliest + timedelta(seconds=runtime + 8 * 3600)),
    )
    message.status.phase = common_pb2.APP_WRAPPER_PHASE_PENDING
    return message


class Counting:
    """An optimizer port that counts its solves; `strip` drops the per-job agnostic runs from each answer,
    as an optimizer that predates them (or ran out of time before the reference) answers."""

    def __init__(self, inner, strip: bool = False):
        self.inner, self.strip, self.calls = inner, strip, 0

    async def solve(self, problem: Problem, options: Options) -> Result:
        self.calls += 1
        result = await self.inner.solve(problem, options)
        if self.strip:
            result = replace(result, placements=tuple(replace(p, agnostic=None) for p in result.placements))
        return result


@pytest.mark.parametrize("answer_carries_runs", [True, False])
@pytest.mark.parametrize("policy", [Policy.CASPIAN, Policy.GREEDY_CARBON])
async def test_the_cycles_agnostic_figure_is_the_sum_of_its_jobs_counterfactuals(
    tmp_path, policy, answer_carries_runs
):
    clock = ManualClock(START)
    store = SqliteStore(str(tmp_path / "hub.db"), now=clock.now)
    await store.open()
    try:
        registry = ClusterRegistry(store, Limits())
        for name, zone in ZONES.items():
            await registry.register(
                common_pb2.ClusterInfo(
                    name=name,
                    zone=zone,
                    capacity=common_pb2.Resources(cpu_millis=6000, memory_bytes=64 * GIB),
                    power=common_pb2.PowerModel(watts_per_core=10.0, pue=1.2),
                )
            )
        jobs = [job(i) for i in range(12)]
        await store.insert_app_wrappers([NewAppWrapper(j, b"t") for j in jobs])
        scheduler = Scheduler(
            store=store,
            clock=clock,
            carbon=HourlyCarbon(intensity),
            optimizer=Counting(LocalOptimizer(), strip=not answer_carries_runs),
            dispatcher=InstantDispatcher(),
            clusters=registry,
            config=SchedulerConfig(policy=policy),
            metrics=HubMetrics.create(CollectorRegistry()),
        )
        reference = scheduler.reference = Counting(scheduler.reference)
        report = await scheduler.tick()
        assert report.outcome == "ok" and report.planned == len(jobs), report.notes
        # The reference is solved again only when the answer does not carry it.
        assert reference.calls == (0 if answer_carries_runs else 1)
        records = [await store.get_app_wrapper(j.id) for j in jobs]
        assert all(r is not None and r.baseline_cluster for r in records)
        counterfactuals = sum(r.message.status.carbon.counterfactual_gco2 for r in records if r is not None)
        assert report.agnostic_gco2 > 0
        assert counterfactuals == pytest.approx(report.agnostic_gco2, rel=1e-9)
        # The reference is carbon-blind: with these forecasts CASPIAN's plan emits less.
        if policy == Policy.CASPIAN:
            assert report.planned_gco2 < report.agnostic_gco2
        # A re-plan keeps each job's counterfactual from its first plan.
        clock.advance(60)
        await scheduler.tick()
        again = [await store.get_app_wrapper(j.id) for j in jobs]
        kept = [r for r in again if r is not None and r.phase == SCHEDULED]
        assert kept
        first = {r.id: r.message.status.carbon.counterfactual_gco2 for r in records if r is not None}
        assert all(r.message.status.carbon.counterfactual_gco2 == first[r.id] for r in kept)
    finally:
        await store.close()
