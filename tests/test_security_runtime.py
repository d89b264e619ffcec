"""Bearer-token authentication and TLS/mTLS in the shared runtime, over real gRPC."""

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from caspian.v1 import hub_pb2, hub_pb2_grpc
from services.common.auth import current_principal
from services.common.server import GrpcServer, ServerSettings

SERVICE = hub_pb2.DESCRIPTOR.services_by_name["HubService"].full_name


class WhoAmI(hub_pb2_grpc.HubServiceServicer):
    async def GetAppWrapper(self, request, context):
        principal = current_principal()
        return hub_pb2.GetAppWrapperResponse(
            app_wrapper={
                "tenant": principal.tenant if principal else "",
                "name": "admin" if principal.admin else "",
            }
        )


async def _start(settings):
    server = GrpcServer("probe", settings)
    server.add_service(hub_pb2_grpc.add_HubServiceServicer_to_server, WhoAmI(), SERVICE)
    await server.start()
    return server


@pytest.fixture
async def authed(tmp_path):
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text("- {token: tok-a, tenant: team-a}\n- {token: tok-ops, tenant: ops, roles: [admin]}\n")
    server = await _start(ServerSettings(port=0, metrics_port=-1, auth_tokens_file=str(tokens)))
    channel = grpc.aio.insecure_channel(server.address)
    yield channel
    await channel.close()
    await server.stop(0)


@pytest.mark.parametrize(
    "metadata", [None, (("authorization", "Bearer nope"),), (("authorization", "tok-a"),)]
)
async def test_missing_or_bad_token_is_unauthenticated(authed, metadata):
    stub = hub_pb2_grpc.HubServiceStub(authed)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetAppWrapper(hub_pb2.GetAppWrapperRequest(id="x"), metadata=metadata, timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "nope" not in err.value.details()


async def test_token_names_the_tenant_and_role(authed):
    stub = hub_pb2_grpc.HubServiceStub(authed)
    got = await stub.GetAppWrapper(
        hub_pb2.GetAppWrapperRequest(id="x"), metadata=(("authorization", "Bearer tok-a"),), timeout=5
    )
    assert (got.app_wrapper.tenant, got.app_wrapper.name) == ("team-a", "")
    got = await stub.GetAppWrapper(
        hub_pb2.GetAppWrapperRequest(id="x"), metadata=(("authorization", "Bearer tok-ops"),), timeout=5
    )
    assert (got.app_wrapper.tenant, got.app_wrapper.name) == ("ops", "admin")


async def test_health_stays_open(authed):
    health = health_pb2_grpc.HealthStub(authed)
    reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def _health(address, creds):
    async with grpc.aio.secure_channel(address, creds) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        return reply.status


async def test_mtls_accepts_the_right_client_and_refuses_others(certs):
    server = await _start(
        ServerSettings(
            port=0,
            metrics_port=-1,
            tls_cert_file=certs.path("server.crt"),
            tls_key_file=certs.path("server.key"),
            tls_client_ca_file=certs.path("ca.crt"),
        )
    )
    address = f"localhost:{server.port}"
    try:
        good = grpc.ssl_channel_credentials(
            certs.read("ca.crt"), certs.read("client.key"), certs.read("client.crt")
        )
        assert await _health(address, good) == health_pb2.HealthCheckResponse.SERVING
        rogue = grpc.ssl_channel_credentials(
            certs.read("ca.crt"), certs.read("rogue-client.key"), certs.read("rogue-client.crt")
        )
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _health(address, rogue)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        no_cert = grpc.ssl_channel_credentials(certs.read("ca.crt"))
        with pytest.raises(grpc.aio.AioRpcError):
            await _health(address, no_cert)
        # A client that does not trust the server's CA refuses the server.
        wrong_trust = grpc.ssl_channel_credentials(
            certs.read("rogue-ca.crt"), certs.read("client.key"), certs.read("client.crt")
        )
        with pytest.raises(grpc.aio.AioRpcError):
            await _health(address, wrong_trust)
    finally:
        await server.stop(0)


def test_token_table_reads_namespaces_and_refuses_bad_entries(tmp_path):
    from services.common.auth import TokenTable

    good = tmp_path / "good.yaml"
    good.write_text(
        "- {token: t1, tenant: team-a, namespaces: [team-a, shared]}\n- {token: t2, tenant: ops}\n"
    )
    table = TokenTable.from_file(str(good))
    assert table.lookup("t1").namespaces == ("team-a", "shared")
    assert table.lookup("t2").namespaces == ()
    assert table.lookup("t3") is None
    bad = tmp_path / "bad.yaml"
    bad.write_text("- {token: t1, tenant: team-a, namespaces: team-a}\n")
    with pytest.raises(ValueError, match="namespaces"):
        TokenTable.from_file(str(bad))
