"""The hub killed with SIGKILL in the middle of a stream of unary submissions from several clients, then started
again on the same port and database: every acknowledged submission is there once, and a retry gets the same
object back."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import grpc
import pytest

from caspian.v1 import common_pb2, hub_pb2, hub_pb2_grpc
from tests.reliability.support import HubProcess, app_wrapper, list_all, scale

CLIENTS = 8  # channels, each its own connection
IN_FLIGHT = 8  # calls in flight per channel
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED}
TENANT = "crash"


@dataclass
class Submission:
    seq: int
    request: hub_pb2.SubmitAppWrapperRequest
    # The first acknowledgement, and whether a failed attempt came before it.
    ack: common_pb2.AppWrapper | None = None
    created: bool = False
    failed_attempts: int = 0


@dataclass
class Tally:
    acked: int = 0
    retried_calls: int = 0
    in_doubt_found: int = 0  # attempts that failed at the kill, then a retry said created=False
    errors: list[str] = field(default_factory=list)


def submissions(total: int, now: datetime) -> list[Submission]:
    """Half name their id, half leave it to the hub with an idempotency key; each carries its number."""
    items = []
    for seq in range(total):
        message = app_wrapper(now=now, tenant=TENANT, labels={"seq": str(seq)})
        request = hub_pb2.SubmitAppWrapperRequest(app_wrapper=message)
        if seq % 2:
            request.request_id = f"crash-req-{seq:06d}"
        else:
            request.app_wrapper.id = f"crash-{seq:06d}"
        items.append(Submission(seq, request))
    return items


async def submit_until_acknowledged(stub, item: Submission, tally: Tally, give_up_at: float) -> None:
    while True:
        try:
            response = await stub.SubmitAppWrapper(item.request, timeout=10, wait_for_ready=True)
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in RETRYABLE or time.monotonic() > give_up_at:
                tally.errors.append(f"{item.seq}: {exc.code().name}: {exc.details()}")
                return
            item.failed_attempts += 1
            tally.retried_calls += 1
            await asyncio.sleep(0.05)
            continue
        item.ack, item.created = response.app_wrapper, response.created
        tally.acked += 1
        if item.failed_attempts and not response.created:
            tally.in_doubt_found += 1
        return


@pytest.mark.scenario("hub killed during submissions")
async def test_hub_killed_during_submissions_loses_and_duplicates_nothing(tmp_path, scenario):
    total = scale(2000, 10_000)
    hub = HubProcess(tmp_path, {"CASPIAN_HUB_LOG_LEVEL": "WARNING"}).start()
    try:
        await asyncio.to_thread(hub.register_clusters)
        items = submissions(total, datetime.now(UTC))
        queue: asyncio.Queue[Submission] = asyncio.Queue()
        for item in items:
            queue.put_nowait(item)
        tally = Tally()
        kill_at = int(total * 0.4)
        killed = asyncio.Event()
        acked_at_kill = -1
        give_up_at = time.monotonic() + 120
        channels = [grpc.aio.insecure_channel(hub.address) for _ in range(CLIENTS)]

        async def worker(stub):
            while not queue.empty():
                await submit_until_acknowledged(stub, queue.get_nowait(), tally, give_up_at)

        async def killer():
            nonlocal acked_at_kill
            while tally.acked < kill_at:
                assert time.monotonic() < give_up_at and not tally.errors, "the kill point was never reached"
                await asyncio.sleep(0.005)
            acked_at_kill = tally.acked
            await asyncio.to_thread(hub.kill)
            killed.set()
            await asyncio.to_thread(hub.start)

        began = time.monotonic()
        workers = [worker(hub_pb2_grpc.HubServiceStub(ch)) for ch in channels for _ in range(IN_FLIGHT)]
        await asyncio.gather(killer(), *workers)
        elapsed = time.monotonic() - began
        assert killed.is_set()
        assert tally.errors == [], tally.errors[:5]

        stub = hub_pb2_grpc.HubServiceStub(channels[0])
        stored = await list_all(stub, tenant=TENANT)
        by_seq: dict[int, list[common_pb2.AppWrapper]] = {}
        for message in stored:
            by_seq.setdefault(int(message.labels["seq"]), []).append(message)
        stored_ids = {m.id for m in stored}
        acknowledged = [i for i in items if i.ack is not None]
        lost = [i.seq for i in acknowledged if i.ack.id not in stored_ids]
        duplicated = sum(len(found) - 1 for found in by_seq.values())

        # Every client retries every submission with the same id or key: the same object comes back.
        differing = []
        for item in acknowledged:
            response = await stub.SubmitAppWrapper(item.request, timeout=10)
            if response.created or response.app_wrapper != item.ack:
                differing.append(item.seq)
        for channel in channels:
            await channel.close()

        scenario.lost, scenario.duplicated = len(lost), duplicated
        scenario.detail.update(
            submissions=total,
            clients=CLIENTS,
            in_flight_per_client=IN_FLIGHT,
            acknowledged=len(acknowledged),
            acknowledged_before_kill=acked_at_kill,
            stored=len(stored),
            calls_retried_after_the_kill=tally.retried_calls,
            unacknowledged_attempts_found_committed=tally.in_doubt_found,
            retries_answered_with_a_different_object=len(differing),
            seconds=round(elapsed, 2),
            submissions_per_second=round(total / elapsed, 1),
        )
        assert len(acknowledged) == total
        assert lost == []
        assert duplicated == 0
        assert len(stored) == total
        assert differing == []
        assert tally.retried_calls > 0, "the kill interrupted no call: the scenario did not test anything"
    finally:
        hub.stop()
