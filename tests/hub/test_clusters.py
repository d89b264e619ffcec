"""The cluster registry: one identity for a spoke (its kube context) through probe, dispatch, events and
reconcile, and a probe failure that stays with its own cluster."""

from __future__ import annotations

import grpc
import pytest

from caspian.v1 import common_pb2, dispatcher_pb2, hub_pb2
from tests.hub.conftest import CLUSTERS, START, cluster_info, phase_is
from tests.support.polling import wait_for

Phase = common_pb2.AppWrapperPhase


async def _register(harness, info: common_pb2.ClusterInfo) -> None:
    await harness.stub.RegisterCluster(hub_pb2.RegisterClusterRequest(cluster=info), timeout=10)


async def _clusters(harness) -> dict[str, common_pb2.ClusterInfo]:
    listed = await harness.stub.ListClusters(hub_pb2.ListClustersRequest(), timeout=10)
    return {c.name: c for c in listed.clusters}


async def test_a_cluster_named_apart_from_its_kube_context_runs_its_jobs(harness):
    fakes = harness.fakes
    fakes.dispatcher.known = {"carbon-cn"}
    east = cluster_info("east", "CN")
    east.kube_context = "carbon-cn"
    await _register(harness, east)
    await harness.submit(id="a", required_clusters=["east"])

    summary = await harness.cycle()
    assert fakes.dispatcher.probes[-1] == ["carbon-cn"]
    assert not any("probe" in note for note in summary.notes), summary.notes
    assert (await _clusters(harness))["east"].ready
    [sent] = fakes.dispatcher.dispatched
    assert (sent.cluster, sent.kube_context) == ("east", "carbon-cn")
    await wait_for(lambda: phase_is(harness, "a", Phase.APP_WRAPPER_PHASE_DISPATCHING), what="dispatching")

    # The spoke reports the Job under its own name (the kube context): it is the AppWrapper's own Job.
    fakes.dispatcher.set_job("a", "carbon-cn", dispatcher_pb2.JOB_PHASE_RUNNING, at=START)
    await wait_for(lambda: phase_is(harness, "a", Phase.APP_WRAPPER_PHASE_RUNNING), what="running")
    assert not fakes.dispatcher.cancelled
    aw = await harness.get("a")
    assert aw.status.target_cluster == "east" and aw.status.job_name == "job-a"

    # The spoke goes NotReady under its kube context: the cluster registered on it follows.
    fakes.dispatcher.set_spoke_ready("carbon-cn", False, "connection refused")

    async def east_not_ready() -> bool:
        return not (await _clusters(harness))["east"].ready

    await wait_for(east_not_ready, what="east not ready")


async def test_a_cluster_sharing_a_spoke_with_one_named_for_it_keeps_its_job(harness):
    """F1: `east` runs on the spoke `carbon-cn`, which is also a registered cluster by that name. The Job the
    spoke reports under its own name is east's (the AppWrapper's target is on that spoke), not stale."""
    fakes = harness.fakes
    await harness.register_clusters()
    east = cluster_info("east", "CN")
    east.kube_context = "carbon-cn"
    await _register(harness, east)
    await harness.submit(id="a", required_clusters=["east"])
    await harness.cycle()
    [sent] = fakes.dispatcher.dispatched
    assert (sent.cluster, sent.kube_context) == ("east", "carbon-cn")

    fakes.dispatcher.set_job("a", "carbon-cn", dispatcher_pb2.JOB_PHASE_RUNNING, at=START)
    await wait_for(lambda: phase_is(harness, "a", Phase.APP_WRAPPER_PHASE_RUNNING), what="running")
    fakes.dispatcher.set_job("a", "carbon-cn", dispatcher_pb2.JOB_PHASE_SUCCEEDED, at=START)
    await wait_for(lambda: phase_is(harness, "a", Phase.APP_WRAPPER_PHASE_SUCCEEDED), what="succeeded")
    assert not fakes.dispatcher.cancelled
    assert (await harness.get("a")).status.target_cluster == "east"


async def test_a_spoke_the_dispatcher_does_not_know_blinds_only_its_own_cluster(harness):
    fakes = harness.fakes
    await harness.register_clusters()
    fakes.dispatcher.known = {name for name, _ in CLUSTERS}
    ghost = cluster_info("ghost", "KR")
    ghost.kube_context = "ghost-context"
    await _register(harness, ghost)
    for name, _ in CLUSTERS:
        fakes.dispatcher.spoke(name).free.cpu_millis = 7000

    summary = await harness.cycle()
    assert any("spoke ghost-context refused" in note for note in summary.notes), summary.notes
    assert not any("using registered capacity" in note for note in summary.notes), summary.notes
    clusters = await _clusters(harness)
    for name, _ in CLUSTERS:
        assert clusters[name].ready and clusters[name].free.cpu_millis == 7000, name
        assert clusters[name].HasField("last_probe")
    assert not clusters["ghost"].ready and "refused" in clusters["ghost"].not_ready_reason

    # A job that may run only on the unknown spoke waits; the others are planned as usual.
    await harness.submit(id="ghostly", required_clusters=["ghost"])
    await harness.submit(id="normal")
    await harness.cycle()
    assert (await harness.get("ghostly")).status.phase == Phase.APP_WRAPPER_PHASE_PENDING
    assert (await harness.get("normal")).status.phase in (
        Phase.APP_WRAPPER_PHASE_SCHEDULED,
        Phase.APP_WRAPPER_PHASE_DISPATCHING,
    )


async def test_the_dispatcher_down_keeps_every_cluster_on_registered_capacity(harness):
    fakes = harness.fakes
    await harness.register_clusters()
    fakes.dispatcher.down = True
    summary = await harness.cycle()
    assert any("dispatcher probe failed" in note for note in summary.notes), summary.notes
    assert all(c.ready for c in (await _clusters(harness)).values())


async def test_a_zone_the_carbon_service_does_not_know_is_refused_naming_the_field(harness):
    harness.fakes.carbon.unknown_zones = {"XX"}
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _register(harness, cluster_info("nowhere", "XX"))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details().startswith("cluster.zone: the carbon service does not know zone 'XX'")
    assert "known: KR, JP-TK, CN" in refused.value.details()
    assert "nowhere" not in await _clusters(harness)
    # A name already registered with another spec is ALREADY_EXISTS, whatever its zone.
    await _register(harness, cluster_info("home", "KR"))
    with pytest.raises(grpc.aio.AioRpcError) as exists:
        await _register(harness, cluster_info("home", "XX"))
    assert exists.value.code() == grpc.StatusCode.ALREADY_EXISTS
    # The carbon service down: the zone cannot be checked, the cluster is kept.
    harness.fakes.carbon.down = True
    await _register(harness, cluster_info("later", "KR"))
    assert "later" in await _clusters(harness)


async def test_an_unknown_kube_context_is_flagged_in_the_registration_answer(harness):
    fakes = harness.fakes
    fakes.dispatcher.known = {"carbon-kr"}
    ok = await harness.stub.RegisterCluster(
        hub_pb2.RegisterClusterRequest(cluster=cluster_info("carbon-kr", "KR")), timeout=10
    )
    assert ok.cluster.ready and ok.cluster.HasField("last_probe")
    ghost = cluster_info("ghost", "KR")
    ghost.kube_context = "ghost-context"
    flagged = await harness.stub.RegisterCluster(hub_pb2.RegisterClusterRequest(cluster=ghost), timeout=10)
    assert not flagged.cluster.ready and "refused" in flagged.cluster.not_ready_reason
    assert (await _clusters(harness))["carbon-kr"].ready


async def test_a_zone_without_forecasts_leaves_the_other_clusters_carbon_aware(harness):
    fakes = harness.fakes
    await harness.register_clusters()
    fakes.carbon.unknown_zones = {"CN"}  # e.g. its data source is gone
    await harness.submit(id="a")
    summary = await harness.cycle()
    assert not summary.carbon_blind, summary.notes
    assert any("no usable forecast for zone(s) CN" in note for note in summary.notes), summary.notes
    # KR (400) is the cleanest known zone; CN is planned at the known zones' mean (450), not favoured.
    assert (await harness.get("a")).status.target_cluster == "carbon-kr"


async def test_a_dispatching_job_whose_job_is_deleted_on_a_shared_spoke_is_dispatched_again(harness):
    """F1: never left in Dispatching. east's Job, deleted on the spoke carbon-cn, is sent again."""
    fakes = harness.fakes
    await harness.register_clusters()
    east = cluster_info("east", "CN")
    east.kube_context = "carbon-cn"
    await _register(harness, east)
    await harness.submit(id="a", required_clusters=["east"])
    await harness.cycle()
    await wait_for(lambda: phase_is(harness, "a", Phase.APP_WRAPPER_PHASE_DISPATCHING), what="dispatching")

    async def confirmed() -> bool:
        return (await harness.get("a")).status.job_name == "job-a"

    await wait_for(confirmed, what="job name recorded")
    fakes.dispatcher.jobs.pop(("a", "carbon-cn"))
    fakes.dispatcher.set_job("a", "carbon-cn", dispatcher_pb2.JOB_PHASE_DELETED, at=START)
    fakes.dispatcher.jobs.pop(("a", "carbon-cn"))

    async def sent_twice() -> bool:
        return len(fakes.dispatcher.dispatched) >= 2

    await harness.cycle()
    await wait_for(sent_twice, what="dispatched again")
    assert [(r.cluster, r.kube_context) for r in fakes.dispatcher.dispatched] == [("east", "carbon-cn")] * 2
    await wait_for(confirmed, what="confirmed again")
    assert (await harness.get("a")).status.phase == Phase.APP_WRAPPER_PHASE_DISPATCHING
    assert not fakes.dispatcher.cancelled
