"""The shared runtime over real gRPC: error mapping, logging, metrics, health and graceful shutdown."""

import asyncio
import json
import logging

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry

from caspian.v1 import hub_pb2, hub_pb2_grpc
from services.common.errors import InvalidArgument
from services.common.logs import JsonFormatter
from services.common.server import GrpcServer, ServerSettings
from tests.support.polling import wait_for

SERVICE = hub_pb2.DESCRIPTOR.services_by_name["HubService"].full_name


class Probe(hub_pb2_grpc.HubServiceServicer):
    def __init__(self):
        self.release = asyncio.Event()
        self.arrived = asyncio.Event()  # a "slow" call is in the servicer

    async def GetAppWrapper(self, request, context):
        if request.id == "boom":
            raise RuntimeError("secret internals /etc/passwd")
        if request.id == "bad":
            raise InvalidArgument("must be a DNS-1123 label", field="id")
        if request.id == "slow":
            self.arrived.set()
            await self.release.wait()
        return hub_pb2.GetAppWrapperResponse()

    async def WatchAppWrappers(self, request, context):
        yield hub_pb2.WatchAppWrappersResponse(revision=1)
        raise RuntimeError("stream broke")


@pytest.fixture
async def running():
    registry = CollectorRegistry()
    server = GrpcServer("probe", ServerSettings(port=0, metrics_port=0), registry)
    probe = Probe()
    server.add_service(hub_pb2_grpc.add_HubServiceServicer_to_server, probe, SERVICE)
    await server.start()
    channel = grpc.aio.insecure_channel(server.address)
    yield server, probe, channel, registry
    await channel.close()
    await server.stop(0)


async def test_unexpected_exception_is_internal_without_traceback(running, caplog):
    server, _, channel, _ = running
    stub = hub_pb2_grpc.HubServiceStub(channel)
    with caplog.at_level(logging.INFO, logger="caspian"):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetAppWrapper(hub_pb2.GetAppWrapperRequest(id="boom"), timeout=5)

        # The server logs the call when its handler ends, which may be after the client has the status.
        def rpc_lines():
            return [r for r in caplog.records if r.getMessage() == "rpc"]

        await wait_for(rpc_lines, within=5, what="the server's rpc log line")
    assert err.value.code() == grpc.StatusCode.INTERNAL
    assert "secret" not in err.value.details() and "Traceback" not in err.value.details()
    assert "request id" in err.value.details()
    assert rpc_lines()[-1].code == "INTERNAL" and rpc_lines()[-1].request_id


async def test_contract_error_maps_to_status_naming_field(running):
    _, _, channel, _ = running
    stub = hub_pb2_grpc.HubServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetAppWrapper(hub_pb2.GetAppWrapperRequest(id="bad"), timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("id:")


async def test_unimplemented_stays_unimplemented(running):
    _, _, channel, _ = running
    stub = hub_pb2_grpc.HubServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetStats(hub_pb2.GetStatsRequest(), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_stream_error_is_internal(running):
    _, _, channel, _ = running
    stub = hub_pb2_grpc.HubServiceStub(channel)
    got = []
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for item in stub.WatchAppWrappers(hub_pb2.WatchAppWrappersRequest(), timeout=5):
            got.append(item.revision)
    assert got == [1]
    assert err.value.code() == grpc.StatusCode.INTERNAL
    assert "stream broke" not in err.value.details()


async def test_metrics_endpoint_counts_rpcs(running):
    server, _, channel, _ = running
    stub = hub_pb2_grpc.HubServiceStub(channel)
    await stub.GetAppWrapper(hub_pb2.GetAppWrapperRequest(id="ok"), timeout=5)
    async with httpx.AsyncClient() as client:
        body = (await client.get(f"http://127.0.0.1:{server.metrics.port}/metrics")).text
    assert 'api_requests_total{code="OK",method="/caspian.v1.HubService/GetAppWrapper"} 1.0' in body


async def test_graceful_shutdown_drains_in_flight_calls(running):
    server, probe, channel, _ = running
    stub = hub_pb2_grpc.HubServiceStub(channel)
    health = health_pb2_grpc.HealthStub(channel)
    in_flight = asyncio.ensure_future(stub.GetAppWrapper(hub_pb2.GetAppWrapperRequest(id="slow"), timeout=10))
    await asyncio.wait_for(probe.arrived.wait(), 10)  # the call is in the servicer, not just sent
    stopping = asyncio.ensure_future(server.stop(grace=5))
    # Health turns NOT_SERVING while the in-flight call is still running.
    await wait_for(
        lambda: server.health._server_status.get("") == health_pb2.HealthCheckResponse.NOT_SERVING,
        within=5,
        what="health NOT_SERVING",
    )
    assert not in_flight.done()
    probe.release.set()
    response = await in_flight
    assert isinstance(response, hub_pb2.GetAppWrapperResponse)
    await stopping
    with pytest.raises(grpc.aio.AioRpcError):
        await health.Check(health_pb2.HealthCheckRequest(), timeout=1)


def test_json_log_line_has_fields():
    record = logging.makeLogRecord({"msg": "rpc", "levelname": "INFO", "method": "/x/Y", "code": "OK"})
    line = json.loads(JsonFormatter("hub").format(record))
    assert line["service"] == "hub" and line["method"] == "/x/Y" and line["code"] == "OK"


async def test_undecodable_request_is_invalid_argument_naming_the_type(running):
    _, _, channel, registry = running
    raw = channel.unary_unary(
        "/caspian.v1.HubService/GetAppWrapper",
        request_serializer=lambda body: body,
        response_deserializer=lambda body: body,
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await raw(b"\xff\xff\xff\xff", timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "GetAppWrapperRequest" in err.value.details()
    # The interceptor counts the call as it finishes, which may be just after the client has its answer.
    labels = {"method": "/caspian.v1.HubService/GetAppWrapper", "code": "INVALID_ARGUMENT"}
    await wait_for(
        lambda: registry.get_sample_value("api_requests_total", labels) == 1.0,
        within=5,
        what="the INVALID_ARGUMENT call counted",
    )
