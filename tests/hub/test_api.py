"""The HubService API over real gRPC: idempotent submit, bulk, get/list/paginate, cancel, clusters, stats."""

from __future__ import annotations

import grpc
import pytest

from caspian.v1 import common_pb2, hub_pb2
from services.common.stable import stable_index
from services.common.timeconv import from_timestamp
from tests.hub.conftest import CLUSTERS, app_wrapper, cluster_info

Phase = common_pb2.AppWrapperPhase


async def test_submit_is_idempotent_on_client_id(harness):
    await harness.register_clusters()
    first = await harness.stub.SubmitAppWrapper(
        hub_pb2.SubmitAppWrapperRequest(app_wrapper=app_wrapper(harness.clock, id="train-1")), timeout=10
    )
    assert first.created and first.app_wrapper.id == "train-1"
    assert first.app_wrapper.status.phase == Phase.APP_WRAPPER_PHASE_PENDING
    assert first.app_wrapper.revision > 0
    retry = await harness.stub.SubmitAppWrapper(
        hub_pb2.SubmitAppWrapperRequest(app_wrapper=app_wrapper(harness.clock, id="train-1")), timeout=10
    )
    assert not retry.created
    assert retry.app_wrapper == first.app_wrapper
    listed = await harness.stub.ListAppWrappers(hub_pb2.ListAppWrappersRequest(), timeout=10)
    assert listed.total_size == 1

    different = app_wrapper(harness.clock, id="train-1", cpu_millis=2000)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await harness.stub.SubmitAppWrapper(
            hub_pb2.SubmitAppWrapperRequest(app_wrapper=different), timeout=10
        )
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "app_wrapper.id" in err.value.details()


async def test_submit_is_idempotent_on_request_id(harness):
    await harness.register_clusters()
    a = await harness.submit(request_id="req-42")
    b = await harness.submit(request_id="req-42")
    c = await harness.submit(request_id="req-43")
    assert a.id == b.id and a.revision == b.revision
    assert c.id != a.id
    assert a.id.startswith("aw-")
    listed = await harness.stub.ListAppWrappers(hub_pb2.ListAppWrappersRequest(), timeout=10)
    assert listed.total_size == 2


async def test_retry_is_answered_even_after_its_cluster_went_away(harness):
    await harness.register_clusters()
    first = await harness.submit(id="pinned", required_clusters=["carbon-jp"])
    await harness.stub.DeregisterCluster(hub_pb2.DeregisterClusterRequest(name="carbon-jp"), timeout=10)
    again = await harness.stub.SubmitAppWrapper(
        hub_pb2.SubmitAppWrapperRequest(
            app_wrapper=app_wrapper(harness.clock, id="pinned", required_clusters=["carbon-jp"])
        ),
        timeout=10,
    )
    assert not again.created and again.app_wrapper.id == first.id


async def test_defaults_are_filled(harness):
    await harness.register_clusters()
    message = await harness.submit(deadline_in=None, tenant="")
    assert message.tenant == "default"
    assert message.name == message.id
    assert message.HasField("earliest_start") and message.HasField("deadline")
    assert message.deadline.seconds - message.earliest_start.seconds == 3600 + 86400


async def test_bulk_stream_reports_each_item(harness):
    await harness.register_clusters()

    def batches():
        for b in range(3):
            items = []
            for i in range(50):
                n = b * 50 + i
                aw = app_wrapper(harness.clock, id=f"bulk-{n}")
                if n == 7:
                    aw.template.image = "bad image; rm -rf /"
                items.append(hub_pb2.SubmitAppWrapperRequest(app_wrapper=aw))
            yield hub_pb2.SubmitAppWrappersRequest(items=items)

    response = await harness.stub.SubmitAppWrappers(batches(), timeout=30)
    assert response.accepted == 149 and response.rejected == 1
    assert [r.index for r in response.results] == list(range(150))
    bad = response.results[7]
    assert bad.error_code == "INVALID_ARGUMENT" and "app_wrapper.template.image" in bad.error_message
    again = await harness.stub.SubmitAppWrappers(batches(), timeout=30)
    assert again.accepted == 149 and not any(r.created for r in again.results)
    listed = await harness.stub.ListAppWrappers(hub_pb2.ListAppWrappersRequest(), timeout=10)
    assert listed.total_size == 149


async def test_get_unknown_is_not_found(harness):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await harness.stub.GetAppWrapper(hub_pb2.GetAppWrapperRequest(id="nope"), timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_list_filters_and_pages(harness):
    await harness.register_clusters()
    for i in range(7):
        await harness.submit(id=f"a-{i}", tenant="team-a")
    for i in range(3):
        await harness.submit(id=f"b-{i}", tenant="team-b")
    seen, token = [], ""
    while True:
        page = await harness.stub.ListAppWrappers(
            hub_pb2.ListAppWrappersRequest(tenant="team-a", page_size=3, page_token=token), timeout=10
        )
        assert page.total_size == 7
        seen += [a.id for a in page.app_wrappers]
        token = page.next_page_token
        if not token:
            break
    assert seen == [f"a-{i}" for i in range(7)]
    scheduled = await harness.stub.ListAppWrappers(
        hub_pb2.ListAppWrappersRequest(phases=[Phase.APP_WRAPPER_PHASE_SCHEDULED]), timeout=10
    )
    assert scheduled.total_size == 0
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await harness.stub.ListAppWrappers(
            hub_pb2.ListAppWrappersRequest(tenant="team-b", page_size=3, page_token=page_token_of(harness)),
            timeout=10,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "page_token" in err.value.details()


def page_token_of(harness) -> str:
    return harness.hub.page_tokens.encode(3, [], "", "team-a")


async def test_list_by_cluster_after_a_cycle(harness):
    await harness.register_clusters()
    await harness.submit(id="one")
    await harness.cycle()
    target = (await harness.get("one")).status.target_cluster
    assert target
    page = await harness.stub.ListAppWrappers(hub_pb2.ListAppWrappersRequest(cluster=target), timeout=10)
    assert [a.id for a in page.app_wrappers] == ["one"]
    other = next(name for name, _ in CLUSTERS if name != target)
    page = await harness.stub.ListAppWrappers(hub_pb2.ListAppWrappersRequest(cluster=other), timeout=10)
    assert page.total_size == 0


async def test_cancel_pending_and_cancel_dispatched_deletes_the_job(harness):
    await harness.register_clusters()
    await harness.submit(id="quick")
    cancelled = await harness.stub.CancelAppWrapper(
        hub_pb2.CancelAppWrapperRequest(id="quick", reason="changed my mind"), timeout=10
    )
    assert cancelled.app_wrapper.status.phase == Phase.APP_WRAPPER_PHASE_CANCELLED
    assert cancelled.app_wrapper.status.reason == "changed my mind"
    assert not harness.fakes.dispatcher.cancelled

    await harness.submit(id="running")
    await harness.cycle()
    assert (await harness.get("running")).status.phase == Phase.APP_WRAPPER_PHASE_DISPATCHING
    await harness.stub.CancelAppWrapper(hub_pb2.CancelAppWrapperRequest(id="running"), timeout=10)
    assert [c.app_wrapper_id for c in harness.fakes.dispatcher.cancelled] == ["running"]

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await harness.stub.CancelAppWrapper(hub_pb2.CancelAppWrapperRequest(id="missing"), timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_cancel_of_finished_is_failed_precondition(harness):
    await harness.register_clusters()
    await harness.submit(id="done")
    await harness.cycle()
    harness.fakes.dispatcher.set_job(
        "done",
        (await harness.get("done")).status.target_cluster,
        4,
        at=harness.clock.now(),
        reason="OOMKilled",
    )
    from tests.hub.conftest import phase_is
    from tests.support.polling import wait_for

    await wait_for(lambda: phase_is(harness, "done", Phase.APP_WRAPPER_PHASE_FAILED), what="Failed")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await harness.stub.CancelAppWrapper(hub_pb2.CancelAppWrapperRequest(id="done"), timeout=10)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_cluster_lifecycle(harness):
    stub = harness.stub
    info = cluster_info("carbon-kr", "KR")
    registered = (
        await stub.RegisterCluster(hub_pb2.RegisterClusterRequest(cluster=info), timeout=10)
    ).cluster
    assert (
        registered.ready and registered.kube_context == "carbon-kr" and registered.job_namespace == "default"
    )
    again = (await stub.RegisterCluster(hub_pb2.RegisterClusterRequest(cluster=info), timeout=10)).cluster
    assert again == registered
    changed = cluster_info("carbon-kr", "JP-TK")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.RegisterCluster(hub_pb2.RegisterClusterRequest(cluster=changed), timeout=10)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS

    bigger = common_pb2.ClusterInfo(
        name="carbon-kr", capacity=common_pb2.Resources(cpu_millis=64000, memory_bytes=1 << 40)
    )
    updated = (
        await stub.UpdateCluster(
            hub_pb2.UpdateClusterRequest(cluster=bigger, update_paths=["capacity"]), timeout=10
        )
    ).cluster
    assert updated.capacity.cpu_millis == 64000 and updated.zone == "KR"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.UpdateCluster(
            hub_pb2.UpdateClusterRequest(cluster=bigger, update_paths=["ready"]), timeout=10
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "update_paths[0]" in err.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.UpdateCluster(
            hub_pb2.UpdateClusterRequest(cluster=cluster_info("nowhere", "KR")), timeout=10
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND

    listed = (await stub.ListClusters(hub_pb2.ListClustersRequest(), timeout=10)).clusters
    assert [c.name for c in listed] == ["carbon-kr"]
    await stub.DeregisterCluster(hub_pb2.DeregisterClusterRequest(name="carbon-kr"), timeout=10)
    assert not (await stub.ListClusters(hub_pb2.ListClustersRequest(), timeout=10)).clusters
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.DeregisterCluster(hub_pb2.DeregisterClusterRequest(name="carbon-kr"), timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert harness.metric("clusters_total") == 0


async def test_deregister_refuses_while_jobs_run_there(harness):
    await harness.register_clusters()
    await harness.submit(id="busy", required_clusters=["carbon-kr"])
    await harness.cycle()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await harness.stub.DeregisterCluster(hub_pb2.DeregisterClusterRequest(name="carbon-kr"), timeout=10)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_stats_and_metrics_count_phases(harness):
    await harness.register_clusters()
    for i in range(3):
        await harness.submit(id=f"s-{i}")
    await harness.stub.CancelAppWrapper(hub_pb2.CancelAppWrapperRequest(id="s-0"), timeout=10)
    stats = await harness.stub.GetStats(hub_pb2.GetStatsRequest(), timeout=10)
    counts = {p.phase: p.count for p in stats.phases}
    assert counts == {Phase.APP_WRAPPER_PHASE_PENDING: 2, Phase.APP_WRAPPER_PHASE_CANCELLED: 1}
    assert stats.app_wrappers_total == 3 and stats.clusters_total == 3 and stats.clusters_ready == 3
    assert harness.metric("appwrappers_total") == 3
    assert harness.metric("appwrappers_pending") == 2
    assert harness.metric("appwrappers_completed") == 1
    assert harness.metric("clusters_ready") == 3
    # One series per phase: Cancelled (or Failed, Unschedulable) is not lumped with Succeeded.
    by_phase = {
        name: harness.metric("caspian_hub_appwrappers", {"phase": name})
        for name in ("pending", "cancelled", "succeeded", "failed", "unschedulable")
    }
    assert by_phase == {"pending": 2, "cancelled": 1, "succeeded": 0, "failed": 0, "unschedulable": 0}
    assert harness.registry.get_sample_value("caspian_hub_appwrappers", {"phase": "unspecified"}) is None


async def test_preview_does_not_submit(harness):
    await harness.register_clusters()
    harness.fakes.carbon.levels = {"KR": 400.0, "JP-TK": 100.0, "CN": 600.0}
    preview = await harness.stub.PreviewSchedule(
        hub_pb2.PreviewScheduleRequest(app_wrapper=app_wrapper(harness.clock)), timeout=10
    )
    assert preview.placeable and preview.cluster == "carbon-jp"
    assert preview.planned_gco2 > 0 and preview.start_now_gco2 >= preview.planned_gco2
    assert preview.saving_gco2 == pytest.approx(preview.start_now_gco2 - preview.planned_gco2)
    # "Start now" is the carbon-agnostic choice: all equally free, so the stable hash of the id picks it.
    names = ["carbon-cn", "carbon-jp", "carbon-kr"]
    assert preview.start_now_cluster == names[stable_index("preview", 3)]
    level = {"carbon-cn": 600.0, "carbon-jp": 100.0, "carbon-kr": 400.0}
    assert preview.start_now_gco2 / preview.planned_gco2 == pytest.approx(
        level[preview.start_now_cluster] / level["carbon-jp"]
    )
    listed = await harness.stub.ListAppWrappers(hub_pb2.ListAppWrappersRequest(), timeout=10)
    assert listed.total_size == 0


async def test_preview_of_a_job_too_tight_for_the_grid_starts_it_at_once(harness):
    await harness.register_clusters()
    harness.fakes.carbon.levels = {"KR": 400.0, "JP-TK": 100.0, "CN": 600.0}
    harness.clock.advance(60)  # 00:01: the next boundary is 00:15
    tight = app_wrapper(harness.clock, runtime=3600, deadline_in=3600 + 300)
    preview = await harness.stub.PreviewSchedule(
        hub_pb2.PreviewScheduleRequest(app_wrapper=tight), timeout=10
    )
    assert preview.placeable and preview.cluster == "carbon-jp"
    assert from_timestamp(preview.planned_start) == harness.clock.now()
    assert "off the slot grid" in preview.reason
    assert preview.start_now_gco2 >= preview.planned_gco2 > 0
    assert preview.start_now_cluster in ("carbon-cn", "carbon-jp", "carbon-kr")
    hopeless = app_wrapper(harness.clock, runtime=3600, deadline_in=3600 + 300)
    harness.clock.advance(600)  # now even starting at once misses the deadline: the door says so
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await harness.stub.PreviewSchedule(hub_pb2.PreviewScheduleRequest(app_wrapper=hopeless), timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details().startswith("app_wrapper.deadline:")


async def test_stats_show_the_last_cycles_outcome_and_notes(harness):
    """#16: an idle cycle has no solve status; GetStats says what it came to instead of UNSPECIFIED."""
    await harness.register_clusters()
    summary = await harness.cycle()
    assert summary.outcome == "idle"
    stats = await harness.stub.GetStats(hub_pb2.GetStatsRequest(), timeout=10)
    assert stats.last_cycle.cycle == summary.cycle and stats.last_cycle.outcome == "idle"
    harness.fakes.optimizer.mode = "down"
    await harness.submit(id="a")
    summary = await harness.cycle()
    stats = await harness.stub.GetStats(hub_pb2.GetStatsRequest(), timeout=10)
    assert stats.last_cycle.outcome == "fallback" and summary.outcome == "fallback"
    assert any("greedy fallback" in note for note in stats.last_cycle.notes), stats.last_cycle.notes
