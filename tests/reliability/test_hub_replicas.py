"""Two hub processes on one real PostgreSQL, with the real carbon, optimizer, dispatcher and simulated spokes,
under steady submissions: the leader killed (SIGKILL) or paused (SIGSTOP) past its lease, the database
stopped and started again, and one request id sent to both replicas at once. Counted on the hub and on the
spokes (every managed Job ever created, by AppWrapper): nothing acknowledged is lost, no AppWrapper gets two
Jobs, every job finishes, and a deposed leader's writes are refused."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import grpc
import pytest

from caspian.v1 import hub_pb2_grpc
from tests.reliability.replicas import REPLICAS, Replicas, SteadyClient, fresh_database
from tests.reliability.stacks import hub_now, spoke_urls
from tests.reliability.support import (
    TERMINAL,
    HubProcess,
    created_jobs,
    list_all_blocking,
    metric,
    phase_name,
    record_jobs,
    scale,
    wait_until,
)
from tests.support.postgres import PostgresServer, running_postgres

SPEEDUP = 240.0  # a 10-minute job runs 2.5 s; half an hour of slack is 7.5 s
LEASE_S = float(scale(5, 10))  # the promise is a takeover within 15 s; the full run uses a 10 s lease


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of the module's own, which the scenarios may stop and start."""
    with running_postgres() as server:
        yield server


def fenced_writes(replicas: Replicas, name: str) -> dict[str, float]:
    address = replicas.procs[name].metrics_address
    return {
        outcome: metric(address, "caspian_hub_fenced_writes_total", outcome=outcome)
        for outcome in ("accepted", "refused", "accepted_late")
    }


def settle(replicas: Replicas, survivor: str, client: SteadyClient, recorders, within: float = 180):
    """Wait until every acknowledged AppWrapper is terminal; count lost and duplicated, on hub and spokes."""
    with grpc.insecure_channel(replicas.procs[survivor].address) as channel:

        def all_finished():
            found = list_all_blocking(channel, tenant=client.tenant)
            return found if found and all(a.status.phase in TERMINAL for a in found) else None

        final = wait_until(all_finished, within, "every AppWrapper in a terminal phase", interval=0.5)
    for recorder in recorders:
        recorder.stop()
    stored = {a.id: a for a in final}
    acknowledged = client.acknowledged
    lost = [i.seq for i in acknowledged if i.ack.id not in stored]
    per_request = Counter(a.labels["seq"] for a in final)
    jobs = Counter(aw for _, _, aw in created_jobs(recorders) if aw in stored)
    return {
        "acknowledged": len(acknowledged),
        "stored": len(final),
        "lost": lost,
        "duplicate_objects": sum(n - 1 for n in per_request.values()),
        "duplicate_jobs": sum(n - 1 for n in jobs.values()),
        "jobs": sum(jobs.values()),
        "phases": dict(Counter(phase_name(a.status.phase) for a in final)),
        "reasons_not_succeeded": dict(
            Counter(
                a.status.reason[:60] for a in final if phase_name(a.status.phase) != "SUCCEEDED"
            ).most_common(3)
        ),
    }


async def steady_with_fault(replicas: Replicas, client: SteadyClient, fault) -> dict:
    """Run the steady client; call `fault()` (in a thread) once half of it is acknowledged."""
    results: dict = {}

    async def inject():
        await asyncio.to_thread(
            wait_until, lambda: len(client.acknowledged) >= client.total // 2, 60, "half acknowledged"
        )
        results.update(await asyncio.to_thread(fault))

    await asyncio.gather(client.run(), inject())
    return results


def start(tmp_path, postgres, name: str, speedup: float = SPEEDUP) -> Replicas:
    url = fresh_database(postgres, name)
    replicas = Replicas.start(tmp_path, database_url=url, lease_seconds=LEASE_S, speedup=speedup)
    wait_until(replicas.leader, 30, "one replica to lead")
    return replicas


@pytest.mark.scenario("hub leader killed under steady submissions")
async def test_the_leader_killed_hands_the_loop_over_and_loses_nothing(tmp_path, postgres, scenario):
    replicas = start(tmp_path, postgres, "killed")
    try:
        recorders = record_jobs(spoke_urls(replicas.stack))
        leader = replicas.leader()
        survivor = next(n for n in REPLICAS if n != leader)
        with grpc.insecure_channel(replicas.procs[survivor].address) as channel:
            now = hub_now(hub_pb2_grpc.HubServiceStub(channel))
        client = SteadyClient(replicas.addresses, "killed", now, scale(30, 400), 0.05, SPEEDUP)

        def kill() -> dict:
            assert replicas.leads(leader), "the leader changed before the kill"
            cycles = metric(replicas.procs[leader].metrics_address, "caspian_schedule_cycles_total")
            replicas.procs[leader].kill()
            killed_at = time.monotonic()
            wait_until(lambda: replicas.leads(survivor), 3 * LEASE_S, "the survivor to lead", interval=0.1)
            return {"leader_cycles_before_kill": cycles, "takeover_seconds": time.monotonic() - killed_at}

        fault = await steady_with_fault(replicas, client, kill)
        counts = await asyncio.to_thread(settle, replicas, survivor, client, recorders)
        scenario.lost, scenario.duplicated = len(counts["lost"]), counts["duplicate_jobs"]
        scenario.detail.update(
            replicas=2,
            lease_seconds=LEASE_S,
            submissions=client.total,
            takeover_seconds=round(fault["takeover_seconds"], 2),
            leader_cycles_before_kill=fault["leader_cycles_before_kill"],
            answers=client.codes,
            elections=replicas.elections(),
            **{k: v for k, v in counts.items() if k != "lost"},
        )
        assert client.errors == [], client.errors[:5]
        assert counts["acknowledged"] == client.total
        assert counts["lost"] == [] and counts["stored"] == client.total
        assert counts["duplicate_objects"] == 0 and counts["duplicate_jobs"] == 0
        assert counts["jobs"] >= counts["phases"].get("SUCCEEDED", 0) > 0
        assert fault["takeover_seconds"] <= LEASE_S + 1.0
        assert fault["leader_cycles_before_kill"] > 0
    finally:
        replicas.stop()


@pytest.mark.scenario("hub leader paused past its lease")
async def test_a_paused_leader_resumed_is_fenced(tmp_path, postgres, scenario):
    replicas = start(tmp_path, postgres, "paused")
    try:
        recorders = record_jobs(spoke_urls(replicas.stack))
        with grpc.insecure_channel(replicas.addresses[0]) as channel:
            now = hub_now(hub_pb2_grpc.HubServiceStub(channel))
        roles: dict[str, str] = {}
        client = SteadyClient(replicas.addresses, "paused", now, scale(40, 400), 0.05, SPEEDUP)

        def pause() -> dict:
            leader = roles["leader"] = wait_until(replicas.leader, 30, "one leader")
            other = roles["other"] = next(n for n in REPLICAS if n != leader)
            before = fenced_writes(replicas, leader)
            replicas.signal(leader, signal.SIGSTOP)
            paused_at = time.monotonic()
            wait_until(lambda: replicas.leads(other), 3 * LEASE_S, "another replica to lead", interval=0.1)
            takeover = time.monotonic() - paused_at
            time.sleep(1.0)  # the new leader plans and dispatches while the old one is still paused
            replicas.signal(leader, signal.SIGCONT)
            wait_until(
                lambda: not replicas.leads(leader), 30, "the resumed replica to step down", interval=0.1
            )
            return {
                "before": before,
                "takeover_seconds": takeover,
                "paused_seconds": time.monotonic() - paused_at,
            }

        fault = await steady_with_fault(replicas, client, pause)
        leader, other = roles["leader"], roles["other"]
        counts = await asyncio.to_thread(settle, replicas, other, client, recorders)
        after = fenced_writes(replicas, leader)
        stale_accepted = after["accepted_late"] - fault["before"]["accepted_late"]
        scenario.lost, scenario.duplicated = len(counts["lost"]), counts["duplicate_jobs"]
        scenario.detail.update(
            replicas=2,
            lease_seconds=LEASE_S,
            submissions=client.total,
            takeover_seconds=round(fault["takeover_seconds"], 2),
            paused_seconds=round(fault["paused_seconds"], 2),
            old_leader_fenced_writes_refused_after_resume=after["refused"] - fault["before"]["refused"],
            old_epoch_writes_accepted_after_the_lease_ran_out=stale_accepted,
            answers=client.codes,
            elections=replicas.elections(),
            **{k: v for k, v in counts.items() if k != "lost"},
        )
        assert client.errors == [], client.errors[:5]
        assert counts["lost"] == [] and counts["stored"] == client.total
        assert counts["duplicate_objects"] == 0 and counts["duplicate_jobs"] == 0
        assert stale_accepted == 0
        assert fault["takeover_seconds"] <= LEASE_S + 1.0
    finally:
        replicas.stop()


@pytest.mark.scenario("hub database stopped and started")
async def test_a_database_outage_is_unavailable_and_the_replicas_recover(tmp_path, postgres, scenario):
    down_s = float(scale(4, 30))
    # Slower simulated time: the requests sent before the outage are still valid when retried after it.
    speedup = float(scale(240, 60))
    replicas = start(tmp_path, postgres, "outage", speedup)
    try:
        recorders = record_jobs(spoke_urls(replicas.stack))
        with grpc.insecure_channel(replicas.addresses[0]) as channel:
            now = hub_now(hub_pb2_grpc.HubServiceStub(channel))
        now_read_at = time.monotonic()
        client = SteadyClient(
            replicas.addresses, "outage", now, scale(40, 400), 0.05, speedup, give_up_s=down_s + 120
        )
        during: Counter = Counter()

        def outage() -> dict:
            postgres.stop("fast")
            stopped_at = time.monotonic()
            probe = SteadyClient(replicas.addresses, "probe", now, 0, 0, speedup)
            with grpc.insecure_channel(replicas.addresses[1]) as channel:
                stub = hub_pb2_grpc.HubServiceStub(channel)
                while time.monotonic() - stopped_at < down_s:
                    try:
                        stub.SubmitAppWrapper(
                            probe.request(len(during), time.monotonic() - now_read_at), timeout=5
                        )
                        during["OK"] += 1  # an acknowledgement it cannot keep
                    except grpc.RpcError as exc:
                        during[exc.code().name] += 1
                        if exc.code() == grpc.StatusCode.UNAVAILABLE:
                            during["clear message"] += "hub database unavailable" in exc.details()
                    time.sleep(0.2)
            postgres.start()
            back_at = time.monotonic()
            leader = wait_until(replicas.leader, 3 * LEASE_S + 10, "a leader after the outage", interval=0.2)
            return {
                "leader": leader,
                "outage_seconds": back_at - stopped_at,
                "leader_in": time.monotonic() - back_at,
            }

        fault = await steady_with_fault(replicas, client, outage)
        counts = await asyncio.to_thread(settle, replicas, fault["leader"], client, recorders)
        with grpc.insecure_channel(replicas.addresses[0]) as channel:
            probes = list_all_blocking(channel, tenant="probe")
        scenario.lost, scenario.duplicated = len(counts["lost"]), counts["duplicate_jobs"]
        scenario.detail.update(
            replicas=2,
            outage_seconds=round(fault["outage_seconds"], 1),
            leader_again_seconds_after_restart=round(fault["leader_in"], 2),
            probe_answers_while_down=dict(during),
            probes_stored=len(probes),
            steady_client_answers=client.codes,
            unavailable_messages=sorted(client.unavailable_messages)[:3],
            submissions=client.total,
            **{k: v for k, v in counts.items() if k != "lost"},
        )
        assert client.errors == [], client.errors[:5]
        assert during["OK"] == 0 and during["INTERNAL"] == 0 and probes == []
        assert during["UNAVAILABLE"] > 0 and during["clear message"] == during["UNAVAILABLE"]
        assert set(during) <= {"UNAVAILABLE", "clear message"}
        assert counts["lost"] == [] and counts["stored"] == client.total
        assert counts["duplicate_objects"] == 0 and counts["duplicate_jobs"] == 0
    finally:
        if not postgres_running(postgres):
            postgres.start()
        replicas.stop()


def postgres_running(server) -> bool:
    try:
        server.psql("SELECT 1")
    except Exception:  # noqa: BLE001
        return False
    return True


@pytest.mark.scenario("same request id on two hub replicas at once")
async def test_one_request_id_on_two_replicas_at_once_is_one_object(tmp_path, postgres, scenario):
    url = fresh_database(postgres, "twice")
    env = {"CASPIAN_HUB_DATABASE_URL": url, "CASPIAN_HUB_LEADER_LEASE_SECONDS": "5"}
    hubs = [HubProcess(tmp_path / name, {**env, "CASPIAN_HUB_REPLICA_NAME": name}) for name in REPLICAS]
    for hub in hubs:
        hub.workdir.mkdir()
        # Registered before the second replica starts: a hub loads the clusters when it opens.
        await asyncio.to_thread(hub.start)
        if hub is hubs[0]:
            await asyncio.to_thread(hub.register_clusters)
    try:
        pairs = scale(100, 2000)
        now = datetime.now(UTC)
        client = SteadyClient([h.address for h in hubs], "twice", now, 0, 0)
        channels = [grpc.aio.insecure_channel(h.address) for h in hubs]
        stubs = [hub_pb2_grpc.HubServiceStub(c) for c in channels]
        created = Counter()
        differing = []

        async def both(seq: int):
            request = client.request(seq)
            answers = await asyncio.gather(*(s.SubmitAppWrapper(request, timeout=30) for s in stubs))
            created.update(a.created for a in answers)
            if answers[0].app_wrapper != answers[1].app_wrapper:
                differing.append(seq)

        began = time.monotonic()
        for start_at in range(0, pairs, 50):
            await asyncio.gather(*(both(seq) for seq in range(start_at, min(pairs, start_at + 50))))
        elapsed = time.monotonic() - began
        with grpc.insecure_channel(hubs[1].address) as channel:
            stored = await asyncio.to_thread(list_all_blocking, channel)
        for channel in channels:
            await channel.close()
        per_seq = Counter(a.labels["seq"] for a in stored if a.tenant == "twice")
        scenario.lost = pairs - len(per_seq)
        scenario.duplicated = sum(n - 1 for n in per_seq.values())
        scenario.detail.update(
            request_ids=pairs,
            calls=2 * pairs,
            answered_created=created[True],
            answered_existing=created[False],
            answers_that_differ=len(differing),
            seconds=round(elapsed, 2),
        )
        assert scenario.lost == 0 and scenario.duplicated == 0
        assert created[True] == pairs and created[False] == pairs
        assert differing == []
    finally:
        for hub in hubs:
            hub.stop()
