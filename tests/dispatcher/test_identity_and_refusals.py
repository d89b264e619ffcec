"""One identity per spoke, a probe answered per spoke, and a refusal the hub must not retry, all over real gRPC
against three simulated spokes."""

import time
from datetime import timedelta

import grpc
import httpx
import pytest

from caspian.v1 import dispatcher_pb2
from services.common.clockstamp import read_stamp
from services.common.errors import DEADLINE_PASSED, REASON_KEY
from tests.dispatcher.support import app_wrapper, dispatch_request


def probe_request(*clusters: str) -> dispatcher_pb2.ProbeClustersRequest:
    return dispatcher_pb2.ProbeClustersRequest(clusters=list(clusters))


async def test_an_unknown_name_is_answered_alone_and_the_others_are_probed(dispatcher):
    answer = await dispatcher.stub.ProbeClusters(probe_request("carbon-kr", "east", "carbon-cn"), timeout=10)
    assert [p.cluster for p in answer.clusters] == ["carbon-kr", "east", "carbon-cn"]
    kr, east, cn = answer.clusters
    assert kr.ready and kr.ready_nodes == 2 and not kr.unknown_spoke
    assert cn.ready and cn.allocatable.cpu_millis == 63_600 and not cn.unknown_spoke
    assert east.unknown_spoke and not east.ready and east.ready_nodes == 0
    assert "east" in east.reason and "carbon-kr" in east.reason  # says which spokes there are
    assert east.free.cpu_millis == 0 and east.HasField("probed_at")


async def test_an_empty_name_is_invalid_argument_naming_its_place(dispatcher):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await dispatcher.stub.ProbeClusters(probe_request("carbon-kr", ""), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("clusters[1]:")


async def test_a_hung_spoke_does_not_cost_the_others_their_probe(dispatcher, spokes):
    """The hung spoke's calls (attempts of one second each, retried) would outlast the caller's deadline of
    1.5 s; it is answered as too slow, within the deadline, and the others with their capacity."""
    async with httpx.AsyncClient(base_url=spokes["carbon-jp"].url, timeout=5) as http:
        (await http.post("/_sim/outage", json={"mode": "hang"})).raise_for_status()
        try:
            started = time.monotonic()
            answer = await dispatcher.stub.ProbeClusters(probe_request(), timeout=1.5)
            elapsed = time.monotonic() - started
        finally:
            (await http.delete("/_sim/outage")).raise_for_status()
    probes = {p.cluster: p for p in answer.clusters}
    assert set(probes) == {"carbon-kr", "carbon-jp", "carbon-cn"}
    assert probes["carbon-kr"].ready and probes["carbon-cn"].ready
    jp = probes["carbon-jp"]
    assert not jp.ready and not jp.unknown_spoke
    # Most often the budget runs out first; on a slow machine the spoke's own retries or breaker may end sooner.
    assert any(why in jp.reason for why in ("did not answer", "failing fast")), jp.reason
    assert elapsed < 1.5


async def test_events_carry_the_spoke_name_the_dispatch_answered_with(dispatcher, events):
    """A hub cluster `east` whose kube context is carbon-cn: the dispatch answers carbon-cn, and every event of the
    Job, its probe and its cancel use that one name."""
    answer = await dispatcher.stub.DispatchJob(
        dispatch_request(app_wrapper("ident-1", runtime_s=600), "east", kube_context="carbon-cn"), timeout=10
    )
    assert answer.cluster == "carbon-cn"
    await events.wait_for(lambda e: "JOB_PHASE_RUNNING" in e.phases("ident-1"))
    assert {job.cluster for job in events.jobs("ident-1")} == {answer.cluster}

    probe = (await dispatcher.stub.ProbeClusters(probe_request(answer.cluster), timeout=10)).clusters[0]
    assert probe.ready and probe.free.cpu_millis == 63_600 - 500

    # Named by its spoke name alone, as the events name it, the spoke is found too.
    cancelled = await dispatcher.stub.CancelJob(
        dispatcher_pb2.CancelJobRequest(app_wrapper_id="ident-1", cluster=answer.cluster), timeout=10
    )
    assert cancelled.deleted
    await events.wait_for(lambda e: e.phases("ident-1")[-1:] == ["JOB_PHASE_DELETED"])
    assert {job.cluster for job in events.jobs("ident-1")} == {answer.cluster}


async def test_a_passed_deadline_is_a_final_refusal_with_a_stable_reason(dispatcher, clock):
    late = app_wrapper("late-deadline", deadline=clock.now() - timedelta(seconds=1))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await dispatcher.stub.DispatchJob(dispatch_request(late, "carbon-kr"), timeout=10)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert err.value.details().startswith("app_wrapper.deadline: the deadline has passed")
    assert (REASON_KEY, DEADLINE_PASSED) in tuple(err.value.trailing_metadata() or ())
    # The refusal also carries the dispatcher's clock, so the caller can tell a skewed clock from a late job.
    assert read_stamp(err.value.trailing_metadata()).now == pytest.approx(clock.now().timestamp(), abs=0.001)

    # Less than a second left is passed too: the Job's activeDeadlineSeconds would be zero.
    almost = app_wrapper("almost-deadline", deadline=clock.now() + timedelta(milliseconds=500))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await dispatcher.stub.DispatchJob(dispatch_request(almost, "carbon-kr"), timeout=10)
    assert (REASON_KEY, DEADLINE_PASSED) in tuple(err.value.trailing_metadata() or ())

    # Another FAILED_PRECONDITION carries no such reason, so the two are told apart by the reason alone.
    elsewhere = dispatch_request(app_wrapper("no-ns"), "carbon-kr", namespace="no-such-namespace")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await dispatcher.stub.DispatchJob(elsewhere, timeout=10)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert REASON_KEY not in {key for key, _ in err.value.trailing_metadata() or ()}
