"""Full scheduling cycles against fake carbon, optimizer and dispatcher servers, on a ManualClock."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import grpc
import pytest

from caspian.v1 import common_pb2, dispatcher_pb2, hub_pb2, optimizer_pb2
from services.common.stable import stable_index
from services.common.timeconv import from_timestamp, to_timestamp
from tests.hub.conftest import START, phase_is
from tests.support.polling import wait_for

Phase = common_pb2.AppWrapperPhase
HOUR = 3600


async def test_full_cycle_plan_gate_run_finish_and_account(harness):
    fakes = harness.fakes
    await harness.register_clusters()
    await harness.submit(id="start-job")
    later = await harness.submit(
        id="later-job", earliest_start=to_timestamp(START + timedelta(hours=2)), deadline_in=12 * HOUR
    )
    assert later.status.phase == Phase.APP_WRAPPER_PHASE_PENDING

    summary = await harness.cycle()
    assert summary.cycle >= 1
    assert (summary.considered, summary.planned, summary.unplaced, summary.dispatched) == (2, 2, 0, 1)
    assert summary.solve_status == optimizer_pb2.SOLVE_STATUS_OPTIMAL
    assert not (summary.carbon_stale or summary.carbon_blind or summary.fallback)

    # What the optimizer was asked: both jobs, every ready cluster with a forecast over the horizon.
    request = fakes.optimizer.requests[-1]
    assert sorted(j.id for j in request.jobs) == ["later-job", "start-job"]
    assert [c.name for c in request.clusters] == ["carbon-cn", "carbon-jp", "carbon-kr"]
    assert all(len(f.gco2_per_kwh) == 96 for f in request.forecasts)
    assert from_timestamp(request.grid.start) == START
    later_job = next(j for j in request.jobs if j.id == "later-job")
    assert from_timestamp(later_job.earliest_start) == START + timedelta(hours=2)

    # The due job went through its gate to the dispatcher; the later one waits, planned.
    now_aw = await harness.get("start-job")
    assert now_aw.status.phase == Phase.APP_WRAPPER_PHASE_DISPATCHING
    assert now_aw.status.target_cluster == "carbon-kr"  # the lowest intensity (400 gCO2/kWh)
    assert now_aw.status.job_name == "job-start-job" and now_aw.status.dispatch_attempts == 1
    assert now_aw.status.carbon.planned_gco2 == pytest.approx(4.0)  # 10 Wh x 400 g/kWh
    assert now_aw.status.cycle == summary.cycle
    [sent] = fakes.dispatcher.dispatched
    assert (sent.app_wrapper.id, sent.cluster, sent.kube_context, sent.namespace) == (
        "start-job",
        "carbon-kr",
        "carbon-kr",
        "default",
    )
    assert from_timestamp(sent.gate_opened_at) == START
    later_aw = await harness.get("later-job")
    assert later_aw.status.phase == Phase.APP_WRAPPER_PHASE_SCHEDULED
    assert from_timestamp(later_aw.status.planned_start) == START + timedelta(hours=2)
    assert harness.metric("caspian_dispatch_latency_seconds_count") == 1
    assert harness.metric("caspian_schedule_cycles_total", {"outcome": "ok"}) == 1

    # The dispatcher reports the Job running, then done an hour later.
    fakes.dispatcher.set_job("start-job", "carbon-kr", dispatcher_pb2.JOB_PHASE_RUNNING, at=START)
    await wait_for(lambda: phase_is(harness, "start-job", Phase.APP_WRAPPER_PHASE_RUNNING), what="Running")
    harness.clock.advance(HOUR)
    fakes.dispatcher.set_job(
        "start-job", "carbon-kr", dispatcher_pb2.JOB_PHASE_SUCCEEDED, at=harness.clock.now()
    )
    await wait_for(
        lambda: phase_is(harness, "start-job", Phase.APP_WRAPPER_PHASE_SUCCEEDED), what="Succeeded"
    )
    done = await harness.get("start-job")
    assert from_timestamp(done.status.started_at) == START
    assert from_timestamp(done.status.finished_at) == START + timedelta(hours=1)

    # The next cycle accounts it from the carbon history: actual on KR (400), counterfactual on the
    # least-loaded cluster at the earliest start. All are equally free: the tie goes by a stable hash of the
    # id, not by name, and for this id that is the first of the three, CN at 600.
    assert stable_index("start-job", 3) == 0
    await harness.cycle()
    done = await harness.get("start-job")
    assert done.status.carbon.actual_gco2 == pytest.approx(4.0)
    assert done.status.carbon.counterfactual_gco2 == pytest.approx(6.0)
    assert done.status.carbon.energy_wh == pytest.approx(10.0)
    stats = await harness.stub.GetStats(hub_pb2.GetStatsRequest(), timeout=10)
    assert stats.emitted_gco2 == pytest.approx(4.0)
    assert stats.counterfactual_gco2 == pytest.approx(6.0)
    assert stats.avoided_gco2 == pytest.approx(2.0)
    assert stats.last_cycle.cycle == summary.cycle + 1
    assert harness.metric("caspian_carbon_emitted_grams_total") == pytest.approx(4.0)
    assert harness.metric("caspian_carbon_avoided_grams_total") == pytest.approx(2.0)
    assert harness.metric("appwrappers_completed") == 1

    # No cycle needed to open the later job's gate: the loop wakes at its planned start.
    harness.clock.set(START + timedelta(hours=2))
    await wait_for(lambda: phase_is(harness, "later-job", Phase.APP_WRAPPER_PHASE_DISPATCHING), what="gate")
    # The gate opens (Dispatching is written) before the dispatcher is called.

    async def both_sent() -> bool:
        return [d.app_wrapper.id for d in fakes.dispatcher.dispatched] == ["start-job", "later-job"]

    await wait_for(both_sent, what="later-job dispatched")


async def test_an_idle_fleets_counterfactual_is_not_the_first_cluster_by_name(harness):
    # Every cluster equally free: the carbon-agnostic counterfactual picks one by a stable hash of the id, as a
    # scheduler breaking ties at random would. By name it would always be carbon-cn, the dirtiest (600), and
    # overstate what was avoided.
    await harness.register_clusters()
    names = ["carbon-cn", "carbon-jp", "carbon-kr"]
    intensity = {"carbon-cn": 600.0, "carbon-jp": 500.0, "carbon-kr": 400.0}
    ids = ["now-job", "job-now", "start-job"]
    assert {names[stable_index(i, 3)] for i in ids} == set(names)
    for job_id in ids:
        await harness.submit(id=job_id)
    await harness.cycle()
    for job_id in ids:
        aw = await harness.get(job_id)
        expected = intensity[names[stable_index(job_id, 3)]] / 100  # 10 Wh x g/kWh / 1000
        assert aw.status.carbon.counterfactual_gco2 == pytest.approx(expected), job_id


async def test_missed_deadline_becomes_unschedulable_with_reason(harness):
    await harness.register_clusters()
    await harness.submit(id="tight", runtime=HOUR, deadline_in=HOUR + 600)
    harness.clock.advance(1800)
    summary = await harness.cycle()
    assert summary.unschedulable == 1
    aw = await harness.get("tight")
    assert aw.status.phase == Phase.APP_WRAPPER_PHASE_UNSCHEDULABLE
    assert "deadline" in aw.status.reason and "can no longer be met" in aw.status.reason


async def test_jobs_that_cannot_be_placed_say_why(harness):
    await harness.register_clusters()
    # Not even starting now is early enough: 00:01:30 + 1 h is past the deadline, 01:01.
    await harness.submit(id="squeezed", runtime=HOUR, deadline_in=HOUR + 60)
    harness.clock.advance(90)
    summary = await harness.cycle()
    assert summary.unschedulable == 1
    assert (await harness.get("squeezed")).status.phase == Phase.APP_WRAPPER_PHASE_UNSCHEDULABLE
    # Earliest start two days out: it waits, Pending, with the reason, and is not sent to the optimizer.
    harness.clock.set(START + timedelta(hours=1))
    await harness.submit(
        id="later", earliest_start=to_timestamp(START + timedelta(days=2)), deadline_in=3 * 86400
    )
    await harness.cycle()
    aw = await harness.get("later")
    assert aw.status.phase == Phase.APP_WRAPPER_PHASE_PENDING
    assert "beyond the planning horizon" in aw.status.reason
    assert not harness.fakes.optimizer.requests  # neither cycle had a job the optimizer could place


async def test_a_job_with_less_slack_than_the_wait_for_the_grid_starts_at_once(harness):
    fakes = harness.fakes
    await harness.register_clusters()
    # The first slot boundary after 00:00:30 is 00:15, and 00:15 + 1 h is past the deadline (01:01); starting
    # at once still meets it. Every cluster has room: the cleanest (KR, 400 g) takes it, off the grid.
    await harness.submit(id="squeezed", runtime=HOUR, deadline_in=HOUR + 60)
    await harness.submit(id="relaxed", runtime=HOUR, deadline_in=6 * HOUR)
    harness.clock.advance(30)
    summary = await harness.cycle()
    assert (summary.considered, summary.planned, summary.unschedulable, summary.dispatched) == (2, 2, 0, 1)
    squeezed = await harness.get("squeezed")
    assert squeezed.status.phase == Phase.APP_WRAPPER_PHASE_DISPATCHING
    assert squeezed.status.target_cluster == "carbon-kr"
    assert from_timestamp(squeezed.status.planned_start) == START + timedelta(seconds=30)
    assert squeezed.status.carbon.planned_gco2 == pytest.approx(4.0)  # 10 Wh x 400 g/kWh
    [sent] = fakes.dispatcher.dispatched
    assert sent.app_wrapper.id == "squeezed" and from_timestamp(sent.gate_opened_at) == harness.clock.now()
    # The optimizer planned only the other job, with the urgent one's run as a reservation from slot 0.
    request = fakes.optimizer.requests[-1]
    assert [j.id for j in request.jobs] == ["relaxed"]
    [reservation] = request.reservations
    assert (reservation.job_id, reservation.cluster, reservation.start_slot, reservation.end_slot) == (
        "squeezed",
        "carbon-kr",
        0,
        4,  # 00:00:30 to 01:00:30 on a grid starting at 00:15: slots 00:15 to 01:15
    )


async def test_an_urgent_job_waits_when_no_cluster_has_room_until_it_ends(harness):
    await harness.register_clusters(cpu_millis=2000)
    for name in ("carbon-cn", "carbon-jp", "carbon-kr"):
        await harness.submit(id=f"busy-{name}", cpu_millis=2000, runtime=2 * HOUR, required_clusters=[name])
    await harness.cycle()  # 00:00: each cluster full for two hours
    await harness.submit(id="squeezed", runtime=HOUR, deadline_in=HOUR + 60)
    harness.clock.advance(30)
    summary = await harness.cycle()
    assert summary.unplaced >= 1
    aw = await harness.get("squeezed")
    assert aw.status.phase == Phase.APP_WRAPPER_PHASE_PENDING
    assert "must start by" in aw.status.reason and "no allowed cluster has room" in aw.status.reason


async def test_running_jobs_are_reservations_and_scheduled_jobs_carry_their_cluster(harness):
    fakes = harness.fakes
    await harness.register_clusters()
    await harness.submit(id="runner")
    await harness.submit(id="planned", earliest_start=to_timestamp(START + timedelta(hours=3)))
    await harness.cycle()
    fakes.dispatcher.set_job("runner", "carbon-kr", dispatcher_pb2.JOB_PHASE_RUNNING, at=START)
    await wait_for(lambda: phase_is(harness, "runner", Phase.APP_WRAPPER_PHASE_RUNNING), what="Running")
    harness.clock.advance(900)
    await harness.cycle()
    request = fakes.optimizer.requests[-1]
    assert [j.id for j in request.jobs] == ["planned"]
    assert request.jobs[0].current_cluster == "carbon-kr"
    # Its current plan is the optimizer's warm start.
    planned = await harness.get("planned")
    assert request.jobs[0].previous.cluster == "carbon-kr"
    assert request.jobs[0].previous.start == planned.status.planned_start
    assert fakes.optimizer.requests[0].jobs[0].HasField("previous") is False
    [reservation] = request.reservations
    assert (reservation.job_id, reservation.cluster, reservation.start_slot) == ("runner", "carbon-kr", 0)
    assert reservation.end_slot == 3  # started 00:00, runs 1 h; the grid now starts at 00:15
    assert request.jobs[0].home_cluster == ""  # no preference: the optimizer's stable spread


async def test_forecast_spread_and_risk_aversion_reach_the_optimizer(harness):
    fakes = harness.fakes
    await harness.register_clusters()
    fakes.carbon.spread = {"KR": lambda i: 0.01 * i, "JP-TK": lambda i: -1.0}  # JP-TK's is malformed
    config = harness.hub.scheduler.config
    assert (config.risk_aversion, config.mip_gap) == (0.0, 0.0)  # the defaults: off, the optimizer's gap
    harness.hub.scheduler.config = dataclasses.replace(config, risk_aversion=0.5, mip_gap=0.001)
    await harness.submit(id="job")
    await harness.cycle()
    request = fakes.optimizer.requests[-1]
    spread = {f.cluster: list(f.relative_spread) for f in request.forecasts}
    assert spread["carbon-kr"] == pytest.approx([0.01 * i for i in range(96)])
    assert spread["carbon-jp"] == [] and spread["carbon-cn"] == []  # dropped: planned as exact
    assert (request.options.risk_aversion, request.options.mip_gap) == (0.5, 0.001)


async def test_plans_use_the_carbon_estimate_only_when_asked(harness):
    fakes = harness.fakes
    await harness.register_clusters()
    fakes.carbon.estimate = {"KR": lambda i: 100.0 + i}
    # Starts no earlier than in 2 hours, so it is still pending, and planned, on the second cycle.
    await harness.submit(
        id="job", earliest_start=to_timestamp(START + timedelta(hours=2)), deadline_in=12 * HOUR
    )
    assert harness.hub.scheduler.config.plan_on_estimate is False  # the default: the raw forecast
    await harness.cycle()
    raw = {f.cluster: list(f.gco2_per_kwh) for f in fakes.optimizer.requests[-1].forecasts}
    assert raw["carbon-kr"] != [100.0 + i for i in range(96)]

    config = harness.hub.scheduler.config
    harness.hub.scheduler.config = dataclasses.replace(config, plan_on_estimate=True)
    await harness.cycle()
    planned = {f.cluster: list(f.gco2_per_kwh) for f in fakes.optimizer.requests[-1].forecasts}
    assert planned["carbon-kr"] == [100.0 + i for i in range(96)]
    assert planned["carbon-jp"] == raw["carbon-jp"]  # no estimate served: the forecast itself either way


async def test_a_jobs_home_is_its_first_preferred_ready_cluster(harness):
    fakes = harness.fakes
    await harness.register_clusters()
    await harness.submit(id="prefers", preferred_clusters=["carbon-jp", "carbon-kr"])
    await harness.cycle()
    [sent] = fakes.optimizer.requests[-1].jobs
    assert (list(sent.preferred_clusters), sent.home_cluster) == (["carbon-jp", "carbon-kr"], "carbon-jp")


async def test_job_status_transitions(harness):
    fakes = harness.fakes
    await harness.register_clusters()
    await harness.submit(id="flaky")
    await harness.submit(id="lost")
    await harness.cycle()
    fakes.dispatcher.set_job("flaky", "carbon-kr", dispatcher_pb2.JOB_PHASE_RUNNING, at=START)
    await wait_for(lambda: phase_is(harness, "flaky", Phase.APP_WRAPPER_PHASE_RUNNING), what="Running")
    fakes.dispatcher.set_job(
        "flaky", "carbon-kr", dispatcher_pb2.JOB_PHASE_UNKNOWN, at=START, reason="spoke down"
    )

    async def noted() -> bool:
        aw = await harness.get("flaky")
        return aw.status.phase == Phase.APP_WRAPPER_PHASE_RUNNING and "unknown" in aw.status.reason

    await wait_for(noted, what="UNKNOWN noted")
    fakes.dispatcher.set_job(
        "flaky", "carbon-kr", dispatcher_pb2.JOB_PHASE_FAILED, at=START, reason="OOMKilled"
    )
    await wait_for(lambda: phase_is(harness, "flaky", Phase.APP_WRAPPER_PHASE_FAILED), what="Failed")
    assert "OOMKilled" in (await harness.get("flaky")).status.reason

    # A Job deleted before it ran is dispatched again by the next gate pass.
    fakes.dispatcher.jobs.pop(("lost", "carbon-kr"))
    fakes.dispatcher.set_job("lost", "carbon-kr", dispatcher_pb2.JOB_PHASE_DELETED, at=START)
    fakes.dispatcher.jobs.pop(("lost", "carbon-kr"))

    async def undispatched() -> bool:
        return not (await harness.get("lost")).status.job_name

    await wait_for(undispatched, what="job name cleared")
    await harness.cycle()
    assert [d.app_wrapper.id for d in fakes.dispatcher.dispatched].count("lost") == 2


async def test_not_ready_cluster_requeues_and_stale_job_is_deleted(harness):
    fakes = harness.fakes
    await harness.register_clusters()
    await harness.submit(id="dispatched", required_clusters=["carbon-kr", "carbon-jp"])
    await harness.submit(id="planned", earliest_start=to_timestamp(START + timedelta(hours=2)))
    await harness.cycle()
    assert (await harness.get("dispatched")).status.target_cluster == "carbon-kr"
    assert (await harness.get("planned")).status.target_cluster == "carbon-kr"

    fakes.dispatcher.set_spoke_ready("carbon-kr", False, "connection refused")
    for name in ("dispatched", "planned"):
        await wait_for(
            lambda n=name: phase_is(harness, n, Phase.APP_WRAPPER_PHASE_PENDING), what=f"{name} requeued"
        )
        aw = await harness.get(name)
        assert "carbon-kr is not ready" in aw.status.reason and not aw.status.target_cluster
    clusters = (await harness.stub.ListClusters(hub_pb2.ListClustersRequest(), timeout=10)).clusters
    kr = next(c for c in clusters if c.name == "carbon-kr")
    assert not kr.ready and kr.not_ready_reason == "connection refused"
    assert harness.metric("clusters_ready") == 2

    await harness.cycle()
    moved = await harness.get("dispatched")
    assert moved.status.target_cluster == "carbon-jp"
    assert moved.status.phase == Phase.APP_WRAPPER_PHASE_DISPATCHING
    assert (await harness.get("planned")).status.target_cluster == "carbon-jp"

    # The spoke comes back and reports the first Job it had been given: stale, so it is deleted.
    fakes.dispatcher.set_spoke_ready("carbon-kr", True)
    fakes.dispatcher.set_job("dispatched", "carbon-kr", dispatcher_pb2.JOB_PHASE_PENDING, at=START)

    async def deleted() -> bool:
        return any(
            (c.app_wrapper_id, c.cluster) == ("dispatched", "carbon-kr") for c in fakes.dispatcher.cancelled
        )

    await wait_for(deleted, what="stale job deleted")
    assert (await harness.get("dispatched")).status.target_cluster == "carbon-jp"


async def test_many_cycles_on_a_manual_clock(harness):
    """A hundred cycles over a day of simulated time run in a moment; every job finishes planned."""
    await harness.register_clusters()
    for i in range(20):
        await harness.submit(
            id=f"job-{i}", earliest_start=to_timestamp(START + timedelta(hours=i)), deadline_in=30 * HOUR
        )
    for _ in range(100):
        await harness.cycle()
        harness.clock.advance(900)
    counts = {
        p.phase: p.count for p in (await harness.stub.GetStats(hub_pb2.GetStatsRequest(), timeout=10)).phases
    }
    assert counts == {Phase.APP_WRAPPER_PHASE_DISPATCHING: 20}
    assert len(harness.fakes.dispatcher.dispatched) == 20


async def test_an_off_grid_job_with_a_later_earliest_start_is_planned_for_that_moment(harness):
    fakes = harness.fakes
    await harness.register_clusters()
    harness.clock.advance(60)  # 00:01: the grid starts at 00:15
    # It may start at 00:20 and must end by 01:25: waiting for the 00:30 boundary would miss that.
    earliest = START + timedelta(minutes=20)
    await harness.submit(
        id="later-tight",
        earliest_start=to_timestamp(earliest),
        deadline=to_timestamp(earliest + timedelta(hours=1, minutes=5)),
        deadline_in=None,
    )
    summary = await harness.cycle()
    assert (summary.planned, summary.unschedulable, summary.dispatched) == (1, 0, 0)
    aw = await harness.get("later-tight")
    assert aw.status.phase == Phase.APP_WRAPPER_PHASE_SCHEDULED
    assert from_timestamp(aw.status.planned_start) == earliest
    harness.clock.set(earliest)
    await harness.cycle()
    assert (await harness.get("later-tight")).status.phase == Phase.APP_WRAPPER_PHASE_DISPATCHING
    assert [d.app_wrapper.id for d in fakes.dispatcher.dispatched] == ["later-tight"]


async def test_finished_appwrappers_go_after_the_ttl_and_stats_keep_their_count(make_harness):
    harness = await make_harness(finished_ttl_seconds=3600)
    await harness.register_clusters()
    await harness.submit(id="cancel-me")
    await harness.submit(id="keep-me")
    await harness.stub.CancelAppWrapper(hub_pb2.CancelAppWrapperRequest(id="cancel-me"), timeout=10)
    await harness.cycle()
    assert (await harness.get("cancel-me")).status.phase == Phase.APP_WRAPPER_PHASE_CANCELLED
    harness.clock.advance(2 * HOUR)
    await harness.cycle()
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await harness.get("cancel-me")
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    assert (await harness.get("keep-me")).status.phase != Phase.APP_WRAPPER_PHASE_UNSPECIFIED
    assert harness.metric("appwrappers_total") == 1
