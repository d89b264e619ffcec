"""Security of the whole stack as real processes: mTLS between every service (certificates made at test time),
bearer tokens per tenant with an admin role, tenant isolation in the hub, namespaces, no way to a privileged
pod, and no secret (the Electricity Maps key, any bearer token, a private key) in any process's output."""

from __future__ import annotations

import os
import pathlib
import secrets

import grpc
import pytest
from google.protobuf.internal.encoder import _VarintBytes
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from kubernetes import client as k8s

from caspian.v1 import (
    carbon_pb2,
    carbon_pb2_grpc,
    common_pb2,
    dispatcher_pb2,
    dispatcher_pb2_grpc,
    hub_pb2,
    hub_pb2_grpc,
    optimizer_pb2,
    optimizer_pb2_grpc,
)
from services.launcher.stack import StackTLS
from tests.carbon.fake_em import FakeElectricityMaps
from tests.reliability.stacks import hub_now, spoke_urls, start_stack
from tests.reliability.support import (
    MANAGED,
    TERMINAL,
    Phase,
    app_wrapper,
    batch_api,
    cluster_infos,
    list_all_blocking,
    phase_name,
    scrape,
    wait_until,
)
from tests.support.certs import make_certs

SPEEDUP = 720.0
NAMESPACES = ("caspian-jobs", "team-a", "team-b")


class Secrets:
    def __init__(self, workdir: pathlib.Path):
        self.team_a = "tok-a-" + secrets.token_hex(16)
        self.team_b = "tok-b-" + secrets.token_hex(16)
        self.admin = "tok-ops-" + secrets.token_hex(16)
        self.hub = "tok-hub-" + secrets.token_hex(16)
        self.wrong = "tok-wrong-" + secrets.token_hex(16)
        self.em_key = "em-key-" + secrets.token_hex(16)
        self.hub_tokens = workdir / "hub-tokens.yaml"
        self.hub_tokens.write_text(
            f"- {{token: {self.team_a}, tenant: team-a, namespaces: [team-a]}}\n"
            f"- {{token: {self.team_b}, tenant: team-b, namespaces: [team-b]}}\n"
            f"- {{token: {self.admin}, tenant: ops, roles: [admin]}}\n"
        )
        self.service_tokens = workdir / "service-tokens.yaml"
        self.service_tokens.write_text(f"- {{token: {self.hub}, tenant: caspian-hub, roles: [admin]}}\n")
        self.hub_token_file = workdir / "hub-token"
        self.hub_token_file.write_text(self.hub + "\n")
        self.em_key_file = workdir / "em-key"
        self.em_key_file.write_text(self.em_key + "\n")
        for path in (self.hub_tokens, self.service_tokens, self.hub_token_file, self.em_key_file):
            os.chmod(path, 0o600)

    def all(self) -> dict[str, str]:
        return {
            "team-a token": self.team_a,
            "team-b token": self.team_b,
            "admin token": self.admin,
            "hub service token": self.hub,
            "rejected token": self.wrong,
            "Electricity Maps key": self.em_key,
        }


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


@pytest.fixture(scope="module")
def secure(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("secure")
    certs = make_certs(workdir)
    keys = Secrets(workdir)
    em = FakeElectricityMaps(token=keys.em_key).start()
    # Some Electricity Maps answers fail, so the provider's error paths (where keys tend to leak) run too.
    em.queue.extend(["500", "429", "500"])
    tls = StackTLS(
        ca=certs.path("ca.crt"),
        server_cert=certs.path("server.crt"),
        server_key=certs.path("server.key"),
        client_cert=certs.path("client.crt"),
        client_key=certs.path("client.key"),
    )
    service_auth = {"AUTH_TOKENS_FILE": str(keys.service_tokens), "LOG_LEVEL": "DEBUG"}
    stack = start_stack(
        workdir,
        speedup=SPEEDUP,
        tls=tls,
        hub_token=keys.admin,
        hub={
            "CASPIAN_HUB_AUTH_TOKENS_FILE": str(keys.hub_tokens),
            "CASPIAN_HUB_SERVICE_TOKEN_FILE": str(keys.hub_token_file),
            "CASPIAN_HUB_ALLOWED_NAMESPACES": ",".join(NAMESPACES),
            "CASPIAN_HUB_LOG_LEVEL": "DEBUG",
        },
        dispatcher={
            **{f"CASPIAN_DISPATCHER_{k}": v for k, v in service_auth.items()},
            "CASPIAN_DISPATCHER_NAMESPACES": ",".join(NAMESPACES),
        },
        optimizer={f"CASPIAN_OPTIMIZER_{k}": v for k, v in service_auth.items()},
        carbon={
            **{f"CASPIAN_CARBON_{k}": v for k, v in service_auth.items()},
            # DE comes from (a local stand-in of) the Electricity Maps API with the key; no spoke uses it.
            "CASPIAN_CARBON_ZONES": "KR=replay:data/carbon/electricitymaps/KR_2023_hourly.csv,"
            "JP-TK=replay:data/carbon/electricitymaps/JP-TK_2023_hourly.csv,CN=synthetic,DE=electricitymaps",
            "CASPIAN_CARBON_EM_BASE_URL": em.base_url,
            "CASPIAN_CARBON_EM_API_KEY_FILE": str(keys.em_key_file),
            "CASPIAN_CARBON_EM_RETRIES": "1",
            "CASPIAN_CARBON_EM_BACKOFF_SECONDS": "0.05",
            "CASPIAN_CARBON_EM_CACHE_SECONDS": "0",
            "CASPIAN_CARBON_REFRESH_SECONDS": "0.5",
        },
    )
    for url in spoke_urls(stack).values():
        core = k8s.CoreV1Api(k8s.ApiClient(k8s.Configuration(host=url)))
        for namespace in NAMESPACES[1:]:
            core.create_namespace({"metadata": {"name": namespace}})
        core.api_client.close()
    yield stack, certs, keys, em
    stack.stop()
    em.stop()


def channel(stack, address: str, certs, cert: str = "client", ca: str = "ca") -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        certs.read(f"{ca}.crt"), certs.read(f"{cert}.key"), certs.read(f"{cert}.crt")
    )
    return grpc.secure_channel(address, credentials)


def code_of(call) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def all_addresses(stack) -> dict[str, str]:
    return {
        "hub": stack.services["hub"].address,
        "carbon": stack.services["carbon"].address,
        "dispatcher": stack.services["dispatcher"].address,
        "optimizer": stack.optimizers[0].address,
    }


def health(ch: grpc.Channel) -> int:
    return health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10).status


@pytest.mark.scenario("security: whole stack over mTLS with tokens")
def test_the_whole_stack_works_over_mtls_with_bearer_tokens(secure, scenario):
    stack, certs, keys, _ = secure
    with channel(stack, stack.hub_address, certs) as ch:
        stub = hub_pb2_grpc.HubServiceStub(ch)
        now = hub_now(stub, bearer(keys.team_a))
        submitted = {}
        for tenant, token in (("team-a", keys.team_a), ("team-b", keys.team_b)):
            for i in range(4):
                message = app_wrapper(
                    id=f"{tenant}-{i}", now=now, namespace=tenant, runtime_s=900, slack_s=3600
                )
                stub.SubmitAppWrapper(
                    hub_pb2.SubmitAppWrapperRequest(app_wrapper=message), timeout=10, metadata=bearer(token)
                )
                submitted[message.id] = tenant

        def finished():
            found = list_all_blocking(ch, bearer(keys.admin))
            mine = [a for a in found if a.id in submitted]
            return (
                mine
                if len(mine) == len(submitted) and all(a.status.phase in TERMINAL for a in mine)
                else None
            )

        final = wait_until(finished, 120, "the tenants' jobs finished", interval=0.5)
        stats = stub.GetStats(hub_pb2.GetStatsRequest(), timeout=10, metadata=bearer(keys.admin))
        clusters = stub.ListClusters(hub_pb2.ListClustersRequest(), timeout=10, metadata=bearer(keys.admin))
    phases = {a.id: phase_name(a.status.phase) for a in final}
    # The hub reached each service over mTLS with its token: the calls got past authentication. (Job states
    # came back on the WatchJobEvents stream, which is counted only once it ends.)
    reached = {}
    for method, proc in (
        ("/caspian.v1.CarbonService/GetForecast", stack.services["carbon"]),
        ("/caspian.v1.OptimizerService/Solve", stack.optimizers[0]),
        ("/caspian.v1.DispatcherService/DispatchJob", stack.services["dispatcher"]),
    ):
        samples = scrape(proc.metrics_address)
        reached[method] = {
            dict(labels)["code"]: int(value)
            for (name, labels), value in samples.items()
            if name == "api_requests_total" and dict(labels).get("method") == method
        }
    scenario.lost = sum(1 for p in phases.values() if p != "SUCCEEDED")
    scenario.duplicated = 0
    scenario.detail.update(
        jobs=len(submitted),
        phases=sorted(set(phases.values())),
        last_cycle_fallback=stats.last_cycle.fallback,
        clusters_ready=sum(c.ready for c in clusters.clusters),
        hub_calls_by_status=reached,
        tls="every service serves TLS and requires a client certificate from the test CA",
    )
    assert set(phases.values()) == {"SUCCEEDED"}, phases
    assert sum(c.ready for c in clusters.clusters) == 3
    for method, codes in reached.items():
        assert sum(n for code, n in codes.items() if code not in ("UNAUTHENTICATED", "UNAVAILABLE")), (
            method,
            codes,
        )
    # The hub reached carbon with its certificate and service token: the last cycle had real forecasts.
    assert not stats.last_cycle.carbon_blind, list(stats.last_cycle.notes)


@pytest.mark.scenario("security: wrong client certificate refused")
def test_clients_with_the_wrong_certificate_are_refused_by_every_service(secure, scenario):
    stack, certs, _, _ = secure
    refused, accepted = {}, {}
    for service, address in all_addresses(stack).items():
        with channel(stack, address, certs) as good:
            accepted[service] = health(good) == health_pb2.HealthCheckResponse.SERVING
        outcomes = {}
        with channel(stack, address, certs, cert="rogue-client") as rogue:
            outcomes["certificate from another CA"] = code_of(lambda ch=rogue: health(ch))
        bare = grpc.secure_channel(address, grpc.ssl_channel_credentials(certs.read("ca.crt")))
        with bare:
            outcomes["no client certificate"] = code_of(lambda ch=bare: health(ch))
        with channel(stack, address, certs, ca="rogue-ca") as distrust:
            outcomes["client does not trust the server"] = code_of(lambda ch=distrust: health(ch))
        with grpc.insecure_channel(address) as plain:
            outcomes["plaintext"] = code_of(lambda ch=plain: health(ch))
        refused[service] = {k: v.name for k, v in outcomes.items()}
    scenario.lost, scenario.duplicated = None, None
    scenario.detail.update(accepted_with_the_right_certificate=accepted, refused=refused)
    assert all(accepted.values()), accepted
    for service, outcomes in refused.items():
        assert set(outcomes.values()) == {"UNAVAILABLE"}, (service, outcomes)


@pytest.mark.scenario("security: authentication")
def test_calls_without_a_valid_token_are_unauthenticated_and_health_and_reflection_stay_open(
    secure, scenario
):
    stack, certs, keys, _ = secure
    now_aw = common_pb2.AppWrapper(id="x")
    hub_calls = {
        "SubmitAppWrapper": lambda s, md: s.SubmitAppWrapper(
            hub_pb2.SubmitAppWrapperRequest(app_wrapper=now_aw), timeout=10, metadata=md
        ),
        "CancelAppWrapper": lambda s, md: s.CancelAppWrapper(
            hub_pb2.CancelAppWrapperRequest(id="team-a-0"), timeout=10, metadata=md
        ),
        "RegisterCluster": lambda s, md: s.RegisterCluster(
            hub_pb2.RegisterClusterRequest(cluster=cluster_infos()[0]), timeout=10, metadata=md
        ),
        "TriggerSchedule": lambda s, md: s.TriggerSchedule(
            hub_pb2.TriggerScheduleRequest(), timeout=10, metadata=md
        ),
        "ListAppWrappers": lambda s, md: s.ListAppWrappers(
            hub_pb2.ListAppWrappersRequest(), timeout=10, metadata=md
        ),
    }
    results = {}
    with channel(stack, stack.hub_address, certs) as ch:
        stub = hub_pb2_grpc.HubServiceStub(ch)
        for name, call in hub_calls.items():
            for label, md in (
                ("no token", ()),
                ("unknown token", bearer(keys.wrong)),
                ("not Bearer", (("authorization", keys.team_a),)),
                ("the hub's service token", bearer(keys.hub)),
            ):
                results[f"hub {name}, {label}"] = code_of(lambda c=call, m=md: c(stub, m)).name
    other = {
        "dispatcher": lambda ch, md: dispatcher_pb2_grpc.DispatcherServiceStub(ch).ListSpokes(
            dispatcher_pb2.ListSpokesRequest(), timeout=10, metadata=md
        ),
        "carbon": lambda ch, md: carbon_pb2_grpc.CarbonServiceStub(ch).ListZones(
            carbon_pb2.ListZonesRequest(), timeout=10, metadata=md
        ),
        "optimizer": lambda ch, md: optimizer_pb2_grpc.OptimizerServiceStub(ch).ListPolicies(
            optimizer_pb2.ListPoliciesRequest(), timeout=10, metadata=md
        ),
    }
    open_calls, service_token = {}, {}
    for service, address in all_addresses(stack).items():
        with channel(stack, address, certs) as ch:
            open_calls[f"{service} health"] = health(ch) == health_pb2.HealthCheckResponse.SERVING
            reply = next(
                reflection_pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo(
                    iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
                )
            )
            names = [s.name for s in reply.list_services_response.service]
            open_calls[f"{service} reflection"] = any(n.startswith("caspian.v1.") for n in names)
            if service in other:
                for label, md in (("no token", ()), ("a tenant's token", bearer(keys.team_a))):
                    results[f"{service}, {label}"] = code_of(
                        lambda c=other[service], m=md, x=ch: c(x, m)
                    ).name
                service_token[service] = code_of(lambda c=other[service], x=ch: c(x, bearer(keys.hub))).name
    scenario.lost, scenario.duplicated = None, None
    scenario.detail.update(
        refused=results, open_without_token=open_calls, with_the_hub_service_token=service_token
    )
    assert set(results.values()) == {"UNAUTHENTICATED"}, results
    assert all(open_calls.values()), open_calls
    # With the hub's token the call gets past authentication (UNIMPLEMENTED while a method is still missing).
    assert not set(service_token.values()) & {"UNAUTHENTICATED", "PERMISSION_DENIED"}, service_token


@pytest.mark.scenario("security: tenant isolation and admin role")
def test_a_tenant_cannot_see_watch_or_cancel_another_tenants_app_wrappers(secure, scenario):
    stack, certs, keys, _ = secure
    outcomes = {}
    with channel(stack, stack.hub_address, certs) as ch:
        stub = hub_pb2_grpc.HubServiceStub(ch)
        a, b, admin = bearer(keys.team_a), bearer(keys.team_b), bearer(keys.admin)
        now = hub_now(stub, a)
        secret_job = app_wrapper(id="iso-a", now=now, namespace="team-a", start_in_s=6 * 3600, slack_s=3600)
        created = stub.SubmitAppWrapper(
            hub_pb2.SubmitAppWrapperRequest(app_wrapper=secret_job), timeout=10, metadata=a
        ).app_wrapper
        outcomes["tenant taken from the token"] = created.tenant == "team-a"
        mine = app_wrapper(id="iso-b", now=now, namespace="team-b", start_in_s=6 * 3600, slack_s=3600)
        stub.SubmitAppWrapper(hub_pb2.SubmitAppWrapperRequest(app_wrapper=mine), timeout=10, metadata=b)
        outcomes["B get"] = code_of(
            lambda: stub.GetAppWrapper(hub_pb2.GetAppWrapperRequest(id="iso-a"), timeout=10, metadata=b)
        ).name
        outcomes["B cancel"] = code_of(
            lambda: stub.CancelAppWrapper(hub_pb2.CancelAppWrapperRequest(id="iso-a"), timeout=10, metadata=b)
        ).name
        seen_by_b = [x.id for x in list_all_blocking(ch, b)]
        outcomes["B list sees A's"] = "iso-a" in seen_by_b or any(x.startswith("team-a") for x in seen_by_b)
        outcomes["B list tenant=team-a"] = code_of(lambda: list_all_blocking(ch, b, tenant="team-a")).name
        outcomes["B watch tenant=team-a"] = code_of(
            lambda: next(
                stub.WatchAppWrappers(
                    hub_pb2.WatchAppWrappersRequest(tenant="team-a"), timeout=10, metadata=b
                )
            )
        ).name
        watch = stub.WatchAppWrappers(hub_pb2.WatchAppWrappersRequest(), timeout=10, metadata=b)
        replayed = []
        for event in watch:
            if event.type == hub_pb2.WATCH_EVENT_TYPE_BOOKMARK:
                break
            replayed.append(event.app_wrapper)
        watch.cancel()
        outcomes["B watch replays only B's"] = bool(replayed) and {x.tenant for x in replayed} == {"team-b"}
        impostor = app_wrapper(id="iso-b-as-a", now=now, tenant="team-a", namespace="team-b")
        outcomes["B submits as team-a"] = code_of(
            lambda: stub.SubmitAppWrapper(
                hub_pb2.SubmitAppWrapperRequest(app_wrapper=impostor), timeout=10, metadata=b
            )
        ).name
        outcomes["A still has it"] = (
            stub.GetAppWrapper(
                hub_pb2.GetAppWrapperRequest(id="iso-a"), timeout=10, metadata=a
            ).app_wrapper.status.phase
            != Phase.APP_WRAPPER_PHASE_CANCELLED
        )
        outcomes["admin sees it"] = (
            stub.GetAppWrapper(
                hub_pb2.GetAppWrapperRequest(id="iso-a"), timeout=10, metadata=admin
            ).app_wrapper.id
            == "iso-a"
        )
        cluster = cluster_infos()[0]
        for name, call in {
            "RegisterCluster": lambda md: stub.RegisterCluster(
                hub_pb2.RegisterClusterRequest(cluster=cluster), timeout=10, metadata=md
            ),
            "UpdateCluster": lambda md: stub.UpdateCluster(
                hub_pb2.UpdateClusterRequest(cluster=cluster), timeout=10, metadata=md
            ),
            "DeregisterCluster": lambda md: stub.DeregisterCluster(
                hub_pb2.DeregisterClusterRequest(name="carbon-kr"), timeout=10, metadata=md
            ),
            "TriggerSchedule": lambda md: stub.TriggerSchedule(
                hub_pb2.TriggerScheduleRequest(), timeout=30, metadata=md
            ),
        }.items():
            outcomes[f"tenant {name}"] = code_of(lambda c=call: c(a)).name
            if name != "DeregisterCluster":
                outcomes[f"admin {name}"] = code_of(lambda c=call: c(admin)).name
        stub.CancelAppWrapper(hub_pb2.CancelAppWrapperRequest(id="iso-a"), timeout=10, metadata=a)
        stub.CancelAppWrapper(hub_pb2.CancelAppWrapperRequest(id="iso-b"), timeout=10, metadata=b)
    scenario.lost, scenario.duplicated = None, None
    scenario.detail.update(outcomes=outcomes)
    assert outcomes == {
        "tenant taken from the token": True,
        "B get": "NOT_FOUND",
        "B cancel": "NOT_FOUND",
        "B list sees A's": False,
        "B list tenant=team-a": "PERMISSION_DENIED",
        "B watch tenant=team-a": "PERMISSION_DENIED",
        "B watch replays only B's": True,
        "B submits as team-a": "PERMISSION_DENIED",
        "A still has it": True,
        "admin sees it": True,
        "tenant RegisterCluster": "PERMISSION_DENIED",
        "admin RegisterCluster": "OK",
        "tenant UpdateCluster": "PERMISSION_DENIED",
        "admin UpdateCluster": "OK",
        "tenant DeregisterCluster": "PERMISSION_DENIED",
        "tenant TriggerSchedule": "PERMISSION_DENIED",
        "admin TriggerSchedule": "OK",
    }


@pytest.mark.scenario("security: every call answered as its own caller")
def test_interleaved_callers_are_each_answered_as_themselves(secure, scenario):
    """Three callers in turn, 100 rounds, on the hub and on the carbon service: tenant A reads its own
    AppWrapper, tenant B asks for the same one, a caller without a token asks too. Each answer must be the
    one for that caller: OK, NOT_FOUND and UNAUTHENTICATED; carbon answers the hub's token and refuses others.
    (A handler cache keyed by id() once ran later calls with an earlier caller's principal: 453 wrong answers
    in 600 such calls.)"""
    stack, certs, keys, _ = secure
    rounds = 100
    wrong: dict[str, int] = {}
    with channel(stack, stack.hub_address, certs) as ch:
        stub = hub_pb2_grpc.HubServiceStub(ch)
        now = hub_now(stub, bearer(keys.team_a))
        mine = app_wrapper(id="turns-a", now=now, namespace="team-a", start_in_s=6 * 3600, slack_s=3600)
        stub.SubmitAppWrapper(
            hub_pb2.SubmitAppWrapperRequest(app_wrapper=mine), timeout=10, metadata=bearer(keys.team_a)
        )
        get = hub_pb2.GetAppWrapperRequest(id="turns-a")
        callers = (
            ("hub: tenant A", bearer(keys.team_a), "OK"),
            ("hub: tenant B", bearer(keys.team_b), "NOT_FOUND"),
            ("hub: no token", (), "UNAUTHENTICATED"),
        )
        for _ in range(rounds):
            for label, md, want in callers:
                got = code_of(lambda m=md: stub.GetAppWrapper(get, timeout=10, metadata=m)).name
                wrong[label] = wrong.get(label, 0) + (got != want)
        stub.CancelAppWrapper(
            hub_pb2.CancelAppWrapperRequest(id="turns-a"), timeout=10, metadata=bearer(keys.team_a)
        )
    with channel(stack, stack.services["carbon"].address, certs) as ch:
        carbon = carbon_pb2_grpc.CarbonServiceStub(ch)
        callers = (
            ("carbon: hub token", bearer(keys.hub), "OK"),
            ("carbon: tenant token", bearer(keys.team_a), "UNAUTHENTICATED"),
            ("carbon: no token", (), "UNAUTHENTICATED"),
        )
        for _ in range(rounds):
            for label, md, want in callers:
                got = code_of(
                    lambda m=md: carbon.ListZones(carbon_pb2.ListZonesRequest(), timeout=10, metadata=m)
                )
                wrong[label] = wrong.get(label, 0) + (got.name != want)
    scenario.lost, scenario.duplicated = None, None
    scenario.detail.update(calls=rounds * 6, wrong_answers=wrong)
    assert sum(wrong.values()) == 0, wrong


@pytest.mark.scenario("security: Jobs only in allowed namespaces")
def test_jobs_only_land_in_allowed_namespaces(secure, scenario):
    stack, certs, keys, _ = secure
    with channel(stack, stack.hub_address, certs) as ch:
        stub = hub_pb2_grpc.HubServiceStub(ch)
        now = hub_now(stub, bearer(keys.team_a))
        refused = {}
        for namespace in ("kube-system", "default", "prod"):
            message = app_wrapper(id=f"ns-{namespace}", now=now, namespace=namespace)
            refused[namespace] = code_of(
                lambda m=message: stub.SubmitAppWrapper(
                    hub_pb2.SubmitAppWrapperRequest(app_wrapper=m), timeout=10, metadata=bearer(keys.team_a)
                )
            ).name
    placed = {}
    for cluster, url in spoke_urls(stack).items():
        api = batch_api(url)
        for job in api.list_job_for_all_namespaces(label_selector=MANAGED).items:
            placed[f"{cluster}/{job.metadata.namespace}/{job.metadata.name}"] = job.metadata.namespace
        api.api_client.close()
    scenario.lost, scenario.duplicated = None, None
    scenario.detail.update(
        allowed=list(NAMESPACES),
        refused=refused,
        jobs_on_spokes=len(placed),
        namespaces_used=sorted(set(placed.values())),
    )
    assert set(refused.values()) == {"INVALID_ARGUMENT"}, refused
    assert placed and set(placed.values()) <= set(NAMESPACES)


def test_a_tenant_cannot_use_another_tenants_namespace(secure):
    stack, certs, keys, _ = secure
    with channel(stack, stack.hub_address, certs) as ch:
        stub = hub_pb2_grpc.HubServiceStub(ch)
        now = hub_now(stub, bearer(keys.team_a))
        message = app_wrapper(id="ns-cross", now=now, namespace="team-b", start_in_s=6 * 3600)
        code = code_of(
            lambda: stub.SubmitAppWrapper(
                hub_pb2.SubmitAppWrapperRequest(app_wrapper=message), timeout=10, metadata=bearer(keys.team_a)
            )
        )
        if code == grpc.StatusCode.OK:
            stub.CancelAppWrapper(
                hub_pb2.CancelAppWrapperRequest(id="ns-cross"), timeout=10, metadata=bearer(keys.team_a)
            )
    assert code == grpc.StatusCode.PERMISSION_DENIED


def _unknown_field(number: int, payload: bytes) -> bytes:
    return _VarintBytes((number << 3) | 2) + _VarintBytes(len(payload)) + payload


@pytest.mark.scenario("security: no privileged or hostPath pod")
def test_smuggled_pod_spec_fields_never_reach_the_job(secure, scenario):
    """Templates have no field for a security context or a volume (test_bad_input checks every message); here
    unknown fields carrying them, sent on the wire, are checked not to reach the Job the spoke runs."""
    stack, certs, keys, _ = secure
    with channel(stack, stack.hub_address, certs) as ch:
        stub = hub_pb2_grpc.HubServiceStub(ch)
        now = hub_now(stub, bearer(keys.team_a))
        message = app_wrapper(id="smuggle", now=now, namespace="team-a", runtime_s=600, slack_s=1800)
        smuggled = common_pb2.JobTemplate()
        smuggled.MergeFromString(
            message.template.SerializeToString()
            + _unknown_field(40, b'{"securityContext": {"privileged": true}}')
            + _unknown_field(41, b'{"volumes": [{"hostPath": {"path": "/"}}]}')
        )
        message.template.CopyFrom(smuggled)
        message.template.env.add(name="SECURITY_CONTEXT", value='{"privileged": true, "hostPath": "/"}')
        stub.SubmitAppWrapper(
            hub_pb2.SubmitAppWrapperRequest(app_wrapper=message), timeout=10, metadata=bearer(keys.team_a)
        )

        def done():
            got = stub.GetAppWrapper(
                hub_pb2.GetAppWrapperRequest(id="smuggle"), timeout=10, metadata=bearer(keys.team_a)
            ).app_wrapper
            return got if got.status.phase in TERMINAL else None

        final = wait_until(done, 120, "the smuggling job finished", interval=0.5)
    api = batch_api(spoke_urls(stack)[final.status.target_cluster])
    job = api.read_namespaced_job(final.status.job_name, "team-a")
    api.api_client.close()
    pod = job.spec.template.spec
    container = pod.containers[0]
    found = {
        "pod securityContext": pod.security_context,
        "pod volumes": pod.volumes,
        "hostNetwork": pod.host_network,
        "hostPID": pod.host_pid,
        "serviceAccountName": pod.service_account_name,
        "container securityContext": container.security_context,
        "container volumeMounts": container.volume_mounts,
    }
    scenario.lost, scenario.duplicated = None, None
    scenario.detail.update(
        job=f"{final.status.target_cluster}/team-a/{final.status.job_name}",
        phase=phase_name(final.status.phase),
        pod_spec_fields_set={k: str(v) for k, v in found.items() if v},
    )
    assert final.status.phase == Phase.APP_WRAPPER_PHASE_SUCCEEDED
    assert {k: v for k, v in found.items() if v} == {}
    assert [e.name for e in container.env] == ["SECURITY_CONTEXT"]  # data, not spec


@pytest.mark.scenario("security: secrets never logged")
def test_no_secret_appears_in_any_process_output(secure, scenario):
    """Runs last in this module: every process has served the calls above, including refused ones."""
    stack, certs, keys, em = secure
    with channel(stack, stack.services["carbon"].address, certs) as ch:
        carbon = carbon_pb2_grpc.CarbonServiceStub(ch)
        em.queue.extend(["500", "429"])
        for _ in range(3):
            code_of(
                lambda: carbon.GetIntensity(
                    carbon_pb2.GetIntensityRequest(zone="DE"), timeout=30, metadata=bearer(keys.hub)
                )
            )
        code_of(
            lambda: carbon.GetIntensity(
                carbon_pb2.GetIntensityRequest(zone="DE"), timeout=30, metadata=bearer(keys.wrong)
            )
        )
    em_calls = sum(1 for r in em.requests if r.token == keys.em_key)
    processes = [*stack.all_processes(), *stack.retired]
    hits, lines, environ_hits = [], 0, []
    for proc in processes:
        name = proc.args[1] if proc.args else proc.module
        output = [*proc.log_lines, *proc.stdout_lines]
        lines += len(output)
        for label, value in keys.all().items():
            if any(value in line for line in output):
                hits.append(f"{name}: {label}")
        if any("PRIVATE KEY" in line for line in output):
            hits.append(f"{name}: a private key")
        if proc.proc is not None and proc.proc.poll() is None:
            for where in ("cmdline", "environ"):
                raw = pathlib.Path(f"/proc/{proc.proc.pid}/{where}").read_bytes().decode(errors="replace")
                environ_hits += [f"{name} {where}: {label}" for label, v in keys.all().items() if v in raw]
    scenario.lost, scenario.duplicated = None, None
    scenario.detail.update(
        processes=len(processes),
        log_lines_searched=lines,
        electricity_maps_calls_with_the_key=em_calls,
        secrets_found_in_logs=hits,
        secrets_found_in_cmdline_or_environment=environ_hits,
    )
    assert em_calls > 0, "the Electricity Maps key was never used: the test would prove nothing"
    assert lines > 100
    assert hits == []
    assert environ_hits == []
