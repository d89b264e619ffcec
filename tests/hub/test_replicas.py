"""Hubs on one PostgreSQL database, over real gRPC: a change made through one is watched through another, an
idempotent submit holds across them, and a database that is down answers UNAVAILABLE, never INTERNAL."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from caspian.v1 import hub_pb2
from tests.hub.conftest import app_wrapper, cluster_info
from tests.hub.test_watch import T, Watcher
from tests.support.polling import wait_for


@pytest.fixture
async def two_hubs(postgres_url, make_harness):
    first = await make_harness(database_url=postgres_url, database_timeout_seconds=1.0)
    # Registered before the second hub starts; later changes reach it too (the last test).
    await first.register_clusters()
    second = await make_harness(database_url=postgres_url, database_timeout_seconds=1.0, clock=first.clock)
    return first, second


async def test_a_watch_on_one_hub_sees_a_submission_through_the_other(two_hubs):
    first, second = two_hubs
    watcher = Watcher(second.stub, hub_pb2.WatchAppWrappersRequest())
    try:
        [bookmark] = await watcher.until_bookmark()
        submitted = await first.submit(id="via-first")
        event = await watcher.next()
        assert (event.type, event.app_wrapper.id, event.revision) == (
            T.WATCH_EVENT_TYPE_ADDED,
            "via-first",
            submitted.revision,
        )
        assert event.revision > bookmark.revision
        assert (await second.get("via-first")).revision == submitted.revision
    finally:
        watcher.close()


async def test_the_same_request_id_on_two_hubs_at_once_is_one_appwrapper(two_hubs):
    first, second = two_hubs
    message = app_wrapper(first.clock)

    async def submit(harness):
        request = hub_pb2.SubmitAppWrapperRequest(app_wrapper=message, request_id="once")
        return (await harness.stub.SubmitAppWrapper(request, timeout=10)).app_wrapper

    answers = await asyncio.gather(*(submit(h) for h in (first, second, first, second)))
    assert len({(a.id, a.revision) for a in answers}) == 1
    listed = await first.stub.ListAppWrappers(hub_pb2.ListAppWrappersRequest(), timeout=10)
    assert [a.id for a in listed.app_wrappers] == [answers[0].id]


async def test_a_database_that_is_down_is_unavailable_and_the_hub_recovers(two_hubs, postgres_server):
    first, _ = two_hubs
    await first.submit(id="before")
    postgres_server.stop("immediate")
    try:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await first.submit(id="while-down")
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "hub database unavailable" in raised.value.details()
        assert "Traceback" not in raised.value.details()
    finally:
        postgres_server.start()

    async def submitted() -> bool:
        try:
            await first.submit(id="after")
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc.details()
            return False
        return True

    await wait_for(submitted, within=20, what="the hub to write again")
    assert (await first.get("after")).id == "after"


async def test_a_cluster_changed_through_one_hub_is_listed_by_the_other(two_hubs):
    first, second = two_hubs
    await second.stub.DeregisterCluster(hub_pb2.DeregisterClusterRequest(name="carbon-cn"), timeout=10)
    listed = await first.stub.ListClusters(hub_pb2.ListClustersRequest(), timeout=10)
    assert sorted(c.name for c in listed.clusters) == ["carbon-jp", "carbon-kr"]
    await first.stub.RegisterCluster(
        hub_pb2.RegisterClusterRequest(cluster=cluster_info("carbon-cn", "CN")), timeout=10
    )
    listed = await second.stub.ListClusters(hub_pb2.ListClustersRequest(), timeout=10)
    assert sorted(c.name for c in listed.clusters) == ["carbon-cn", "carbon-jp", "carbon-kr"]
