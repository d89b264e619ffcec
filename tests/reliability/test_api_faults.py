"""Faults at the hub's API layer, each against a real hub process (issue 17):
- F4: one bulk stream of empty messages is cut with RESOURCE_EXHAUSTED at its message limit, memory flat;
- F13: hundreds of watchers open while a bulk submission runs: the submission takes about its time alone,
  watchers past the limit are refused with RESOURCE_EXHAUSTED, and every admitted watcher gets every event;
- F9: a disk that cannot take a write answers RESOURCE_EXHAUSTED or UNAVAILABLE (not INTERNAL), health goes
  NOT_SERVING, and both recover at the next write that commits."""

from __future__ import annotations

import asyncio
import resource
import time
from datetime import UTC, datetime

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from caspian.v1 import hub_pb2, hub_pb2_grpc
from tests.reliability.support import (
    HubProcess,
    app_wrapper,
    await_until,
    metric,
    rss_bytes,
    scale,
)

MIB = 1 << 20
T = hub_pb2.WatchEventType


def _health(address: str) -> int:
    with grpc.insecure_channel(address) as channel:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5).status


@pytest.mark.scenario("bulk stream: empty messages bounded, memory flat (F4)")
def test_a_stream_of_empty_messages_is_cut_at_its_limit_with_memory_flat(tmp_path, scenario):
    limit = scale(20_000, 100_000)  # the default CASPIAN_HUB_BULK_MAX_MESSAGES in the full run
    sent_at_most = scale(30_000, 500_000)  # the 500,000 in the full run
    env = {} if limit == 100_000 else {"CASPIAN_HUB_BULK_MAX_MESSAGES": str(limit)}
    hub = HubProcess(tmp_path, env).start()
    try:
        pid = hub.proc.proc.pid
        before = rss_bytes(pid)
        sent = 0

        def messages():
            nonlocal sent
            empty = hub_pb2.SubmitAppWrappersRequest()
            for _ in range(sent_at_most):
                sent += 1
                yield empty

        started = time.monotonic()
        with grpc.insecure_channel(hub.address) as channel:
            stub = hub_pb2_grpc.HubServiceStub(channel)
            with pytest.raises(grpc.RpcError) as err:
                stub.SubmitAppWrappers(messages(), timeout=300)
        elapsed = time.monotonic() - started
        after = rss_bytes(pid)
        scenario.lost, scenario.duplicated = 0, 0
        scenario.detail.update(
            messages_limit=limit,
            messages_offered=sent_at_most,
            messages_sent_before_the_answer=sent,
            code=err.value.code().name,
            rss_before_mib=round(before / MIB, 1),
            rss_after_mib=round(after / MIB, 1),
            seconds=round(elapsed, 2),
        )
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.value.details()
        assert f"at most {limit} messages" in err.value.details()
        assert after - before < 40 * MIB, f"RSS grew {(after - before) / MIB:.0f} MiB"
        assert hub.alive() and _health(hub.address) == health_pb2.HealthCheckResponse.SERVING
    finally:
        hub.stop()


async def _bulk(stub, prefix: str, count: int) -> float:
    now = datetime.now(UTC)
    items = [
        hub_pb2.SubmitAppWrapperRequest(app_wrapper=app_wrapper(id=f"{prefix}-{i:05d}", now=now))
        for i in range(count)
    ]
    batches = [hub_pb2.SubmitAppWrappersRequest(items=items[i : i + 500]) for i in range(0, count, 500)]
    started = time.monotonic()
    response = await stub.SubmitAppWrappers(iter(batches), timeout=120)
    elapsed = time.monotonic() - started
    assert response.accepted == count, [r.error_message for r in response.results if r.error_message][:3]
    return elapsed


class _Watcher:
    def __init__(self, stub):
        self.call = stub.WatchAppWrappers(hub_pb2.WatchAppWrappersRequest(), timeout=600)
        self.added = 0
        self.bookmarked = asyncio.Event()
        self.error: grpc.StatusCode | None = None
        self.task = asyncio.ensure_future(self._pump())

    async def _pump(self) -> None:
        try:
            async for event in self.call:
                if event.type == T.WATCH_EVENT_TYPE_BOOKMARK:
                    self.bookmarked.set()
                elif event.type == T.WATCH_EVENT_TYPE_ADDED:
                    self.added += 1
        except grpc.aio.AioRpcError as exc:
            self.error = exc.code()
        finally:
            self.bookmarked.set()


@pytest.mark.scenario("watch: many watchers do not slow a bulk submit (F13)")
async def test_many_watchers_do_not_slow_a_bulk_submission(tmp_path, scenario):
    watchers_offered = scale(300, 1000)
    jobs = scale(1000, 2000)
    hub = HubProcess(tmp_path).start()
    hub.register_clusters()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    watchers: list[_Watcher] = []
    try:
        async with grpc.aio.insecure_channel(hub.address) as channel:
            stub = hub_pb2_grpc.HubServiceStub(channel)
            await _bulk(stub, "warm", 500)
            baseline = await _bulk(stub, "alone", jobs)
            # Watchers on their own connections, as separate clients would be.
            channels = [grpc.aio.insecure_channel(hub.address) for _ in range(8)]
            try:
                for i in range(watchers_offered):
                    watchers.append(_Watcher(hub_pb2_grpc.HubServiceStub(channels[i % len(channels)])))
                await asyncio.wait_for(asyncio.gather(*(w.bookmarked.wait() for w in watchers)), 120)
                admitted = [w for w in watchers if w.error is None]
                refused = [w for w in watchers if w.error == grpc.StatusCode.RESOURCE_EXHAUSTED]
                watched = await _bulk(stub, "watched", jobs)
                total = jobs + jobs + 500  # the warm-up and first batch in each replay, then the new jobs

                async def delivered() -> bool:
                    return all(w.added >= total or w.error is not None for w in admitted)

                await await_until(delivered, within=180, what="every watcher's events", interval=0.2)
                complete = sum(1 for w in admitted if w.added >= total)
                dropped = sum(1 for w in admitted if w.error is not None)
            finally:
                for watcher in watchers:
                    watcher.call.cancel()
                await asyncio.gather(*(w.task for w in watchers), return_exceptions=True)
                for extra in channels:
                    await extra.close()
        internal = metric(hub.proc.metrics_address, "api_requests_total", code="INTERNAL")
        scenario.lost, scenario.duplicated = 0, 0
        scenario.detail.update(
            jobs=jobs,
            watchers_offered=watchers_offered,
            watchers_admitted=len(admitted),
            watchers_refused=len(refused),
            watchers_with_every_event=complete,
            watchers_dropped=dropped,
            submit_alone_seconds=round(baseline, 3),
            submit_watched_seconds=round(watched, 3),
            ratio=round(watched / baseline, 2),
            internal=int(internal),
        )
        assert len(admitted) == min(watchers_offered, 256)
        assert len(refused) == watchers_offered - len(admitted)
        assert complete == len(admitted), scenario.detail
        assert watched <= 3 * baseline + 0.5, scenario.detail
        assert internal == 0
    finally:
        hub.stop()


@pytest.mark.scenario("store: a disk that takes no write is answered, health follows (F9)")
def test_a_disk_that_takes_no_write_is_answered_and_health_follows(tmp_path, scenario):
    hub = HubProcess(tmp_path).start()
    try:
        hub.register_clusters()
        pid = hub.proc.proc.pid
        now = datetime.now(UTC)
        with grpc.insecure_channel(hub.address) as channel:
            stub = hub_pb2_grpc.HubServiceStub(channel)
            stub.SubmitAppWrapper(
                hub_pb2.SubmitAppWrapperRequest(app_wrapper=app_wrapper(id="before", now=now)), timeout=10
            )
            # No file of the hub may grow past its present size: the next commit cannot be written.
            limits = resource.prlimit(pid, resource.RLIMIT_FSIZE)
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (1, limits[1]))
            try:
                with pytest.raises(grpc.RpcError) as err:
                    payload = app_wrapper(id="while-full", now=now)
                    payload.template.env.add(name="PAD", value="p" * 30_000)
                    stub.SubmitAppWrapper(hub_pb2.SubmitAppWrapperRequest(app_wrapper=payload), timeout=60)
                code, details = err.value.code(), err.value.details()
                deadline = time.monotonic() + 10
                while _health(hub.address) != health_pb2.HealthCheckResponse.NOT_SERVING:
                    assert time.monotonic() < deadline, "health stayed SERVING"
                    time.sleep(0.1)
                served = stub.GetAppWrapper(hub_pb2.GetAppWrapperRequest(id="before"), timeout=10)
            finally:
                resource.prlimit(pid, resource.RLIMIT_FSIZE, limits)
            after = stub.SubmitAppWrapper(
                hub_pb2.SubmitAppWrapperRequest(app_wrapper=app_wrapper(id="after", now=now)), timeout=30
            )
            health_after = _health(hub.address)
            lost = 0
            for job_id in ("before", "after"):
                try:
                    stub.GetAppWrapper(hub_pb2.GetAppWrapperRequest(id=job_id), timeout=10)
                except grpc.RpcError:
                    lost += 1
        scenario.lost, scenario.duplicated = lost, 0
        scenario.detail.update(
            code=code.name,
            message=details[:200],
            reads_while_full=bool(served.app_wrapper.id),
            health_after=health_pb2.HealthCheckResponse.ServingStatus.Name(health_after),
        )
        assert code in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE), details
        assert "internal" not in details.lower() and "Traceback" not in details
        assert after.created and lost == 0
        assert health_after == health_pb2.HealthCheckResponse.SERVING
    finally:
        hub.stop()
