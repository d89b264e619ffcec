"""With bearer tokens on, a tenant sees and changes only its own AppWrappers; clusters and cycles need admin."""

from __future__ import annotations

import sqlite3

import grpc
import pytest

from caspian.v1 import hub_pb2
from tests.hub.conftest import app_wrapper, cluster_info

ADMIN = (("authorization", "Bearer tok-ops"),)
TEAM_A = (("authorization", "Bearer tok-a"),)
TEAM_B = (("authorization", "Bearer tok-b"),)


@pytest.fixture
async def authed(make_harness, tmp_path):
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(
        "- {token: tok-ops, tenant: ops, roles: [admin]}\n- {token: tok-a, tenant: team-a}\n- {token: tok-b, tenant: team-b}\n"
    )
    harness = await make_harness(auth_tokens_file=str(tokens))
    await harness.stub.RegisterCluster(
        hub_pb2.RegisterClusterRequest(cluster=cluster_info("carbon-kr", "KR")), metadata=ADMIN, timeout=10
    )
    return harness


async def _denied(call, code=grpc.StatusCode.PERMISSION_DENIED):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == code, err.value.details()
    return err.value


async def test_clusters_and_cycles_need_admin(authed):
    stub = authed.stub
    await _denied(
        stub.RegisterCluster(
            hub_pb2.RegisterClusterRequest(cluster=cluster_info("carbon-jp", "JP-TK")),
            metadata=TEAM_A,
            timeout=10,
        )
    )
    await _denied(
        stub.DeregisterCluster(
            hub_pb2.DeregisterClusterRequest(name="carbon-kr"), metadata=TEAM_A, timeout=10
        )
    )
    await _denied(stub.TriggerSchedule(hub_pb2.TriggerScheduleRequest(), metadata=TEAM_A, timeout=10))
    await _denied(
        stub.ListClusters(hub_pb2.ListClustersRequest(), timeout=10), grpc.StatusCode.UNAUTHENTICATED
    )
    listed = await stub.ListClusters(hub_pb2.ListClustersRequest(), metadata=TEAM_A, timeout=10)
    assert [c.name for c in listed.clusters] == ["carbon-kr"]
    summary = (
        await stub.TriggerSchedule(hub_pb2.TriggerScheduleRequest(), metadata=ADMIN, timeout=10)
    ).summary
    assert summary.cycle >= 1


async def test_tenants_are_confined_to_their_own_app_wrappers(authed):
    stub = authed.stub
    mine = app_wrapper(authed.clock, id="a-job", tenant="")
    got = await stub.SubmitAppWrapper(
        hub_pb2.SubmitAppWrapperRequest(app_wrapper=mine), metadata=TEAM_A, timeout=10
    )
    assert got.app_wrapper.tenant == "team-a"
    error = await _denied(
        stub.SubmitAppWrapper(
            hub_pb2.SubmitAppWrapperRequest(
                app_wrapper=app_wrapper(authed.clock, id="spoof", tenant="team-a")
            ),
            metadata=TEAM_B,
            timeout=10,
        )
    )
    assert error.details().startswith("app_wrapper.tenant")
    await stub.SubmitAppWrapper(
        hub_pb2.SubmitAppWrapperRequest(app_wrapper=app_wrapper(authed.clock, id="b-job", tenant="")),
        metadata=TEAM_B,
        timeout=10,
    )

    await _denied(
        stub.GetAppWrapper(hub_pb2.GetAppWrapperRequest(id="a-job"), metadata=TEAM_B, timeout=10),
        grpc.StatusCode.NOT_FOUND,
    )
    await _denied(
        stub.CancelAppWrapper(hub_pb2.CancelAppWrapperRequest(id="a-job"), metadata=TEAM_B, timeout=10),
        grpc.StatusCode.NOT_FOUND,
    )
    seen = await stub.ListAppWrappers(hub_pb2.ListAppWrappersRequest(), metadata=TEAM_B, timeout=10)
    assert [a.id for a in seen.app_wrappers] == ["b-job"]
    await _denied(
        stub.ListAppWrappers(hub_pb2.ListAppWrappersRequest(tenant="team-a"), metadata=TEAM_B, timeout=10)
    )
    everyone = await stub.ListAppWrappers(hub_pb2.ListAppWrappersRequest(), metadata=ADMIN, timeout=10)
    assert sorted(a.id for a in everyone.app_wrappers) == ["a-job", "b-job"]

    call = stub.WatchAppWrappers(hub_pb2.WatchAppWrappersRequest(), metadata=TEAM_B, timeout=10)
    first = await call.read()
    assert first.app_wrapper.id == "b-job"
    assert (await call.read()).type == hub_pb2.WATCH_EVENT_TYPE_BOOKMARK
    call.cancel()


async def test_another_tenants_quarantined_id_is_not_found_and_its_own_tenant_hears_data_loss(authed):
    """A damaged row stays its tenant's: to any other tenant its id is NOT_FOUND, like any it may not see."""
    stub = authed.stub
    await stub.SubmitAppWrapper(
        hub_pb2.SubmitAppWrapperRequest(app_wrapper=app_wrapper(authed.clock, id="a-held", tenant="")),
        metadata=TEAM_A,
        timeout=10,
    )
    with sqlite3.connect(authed.hub.store.path, timeout=10) as conn:
        conn.execute("UPDATE appwrappers SET body = ? WHERE id = ?", (b"\xff\xff\xff\xff", "a-held"))
    get = hub_pb2.GetAppWrapperRequest(id="a-held")
    other = await _denied(stub.GetAppWrapper(get, metadata=TEAM_B, timeout=10), grpc.StatusCode.NOT_FOUND)
    assert "quarantined" not in other.details()
    own = await _denied(stub.GetAppWrapper(get, metadata=TEAM_A, timeout=10), grpc.StatusCode.DATA_LOSS)
    assert "quarantined" in own.details()
    # Now read from the quarantine table, not decoded afresh: the same answers.
    await _denied(stub.GetAppWrapper(get, metadata=TEAM_B, timeout=10), grpc.StatusCode.NOT_FOUND)
    await _denied(stub.GetAppWrapper(get, metadata=ADMIN, timeout=10), grpc.StatusCode.DATA_LOSS)
