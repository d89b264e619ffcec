"""deploy/k8s: `kubectl kustomize` renders it, every document validates against the Kubernetes 1.30 strict
schemas, and the rendered objects hold what running CASPIAN on a cluster needs."""

from __future__ import annotations

import copy
import json
import pathlib
import shutil
import subprocess

import pytest
import yaml

from tests.ops.schemas import SCHEMAS, errors, k8s_schema_name

ROOT = pathlib.Path(__file__).resolve().parents[2]
PORTS = {
    "hub": (50050, 9100),
    "carbon": (50051, 9101),
    "optimizer": (50052, 9102),
    "dispatcher": (50053, 9103),
}

pytestmark = pytest.mark.skipif(
    shutil.which("kubectl") is None,
    reason="kubectl is not installed; `make test` installs it (kubernetes-client)",
)


def kubectl(*args: str) -> str:
    done = subprocess.run(["kubectl", *args], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout


def render(path: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(kubectl("kustomize", path)) if doc]


@pytest.fixture(scope="module")
def base() -> list[dict]:
    return render("deploy/k8s")


@pytest.fixture(scope="module")
def single_cluster() -> list[dict]:
    return render("deploy/k8s/overlays/single-cluster")


def find(docs: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def one(docs: list[dict], kind: str, name: str) -> dict:
    [doc] = find(docs, kind, name)
    return doc


@pytest.fixture(scope="module")
def replicated() -> list[dict]:
    return render("deploy/k8s/overlays/replicated")


@pytest.mark.parametrize("variant", ["base", "single_cluster", "replicated"])
def test_every_rendered_document_validates_against_its_schema(variant, request):
    docs = request.getfixturevalue(variant)
    assert len(docs) >= 20
    for doc in docs:
        name = k8s_schema_name(doc)
        assert (SCHEMAS / name).exists(), (
            f"no schema {name} for {doc['kind']}; copy it into deploy/schemas/k8s"
        )
        assert errors(name, doc) == [], f"{doc['kind']}/{doc['metadata']['name']}"


def test_the_strict_schemas_reject_unknown_and_mistyped_fields(base):
    deployment = copy.deepcopy(one(base, "Deployment", "hub"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFilesytem"] = True
    assert errors("k8s/deployment-apps-v1.json", deployment) != []
    service = copy.deepcopy(one(base, "Service", "hub"))
    service["spec"]["ports"][0]["port"] = "fifty"
    assert errors("k8s/service-v1.json", service) != []


def test_the_base_has_the_objects_a_deployment_needs(base):
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in base)
    for service in PORTS:
        assert ("Deployment", service) in kinds and ("Service", service) in kinds
        assert ("ServiceAccount", f"caspian-{service}") in kinds
    assert [d["metadata"]["name"].startswith("caspian-config-") for d in find(base, "ConfigMap")] == [True]
    assert {d["kind"] for d in base} >= {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}
    assert {d["metadata"]["name"] for d in find(base, "Namespace")} == {"caspian", "caspian-jobs"}
    namespaced = [d for d in base if d["kind"] not in {"Namespace", "ClusterRole", "ClusterRoleBinding"}]
    assert all(d["metadata"].get("namespace") for d in namespaced)


@pytest.mark.parametrize("service", list(PORTS))
def test_deployments_are_hardened_probed_and_sized(base, service):
    grpc_port, metrics_port = PORTS[service]
    deployment = one(base, "Deployment", service)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == f"caspian-{service}"
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] >= 10000
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    [container] = pod["containers"]
    assert container["image"] == "caspian:0.1.0"
    assert container["command"] == ["python", "-m", f"services.{service}"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["grpc"] == {"port": grpc_port}, probe
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "grpc": grpc_port,
        "metrics": metrics_port,
    }
    [config] = find(base, "ConfigMap")
    assert container["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]
    data = config["data"]
    prefix = f"CASPIAN_{service.upper()}_"
    assert data[prefix + "HOST"] == "0.0.0.0"
    assert (data[prefix + "PORT"], data[prefix + "METRICS_PORT"]) == (str(grpc_port), str(metrics_port))
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts["/tmp"] == "tmp" and "emptyDir" in volumes["tmp"], "a writable /tmp on a read-only root"
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(metrics_port)
    service_doc = one(base, "Service", service)
    assert {p["name"]: p["port"] for p in service_doc["spec"]["ports"]} == {
        "grpc": grpc_port,
        "metrics": metrics_port,
    }
    assert service_doc["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_hub_keeps_its_database_on_a_volume_and_reaches_the_optimizer_over_dns(base):
    [config] = find(base, "ConfigMap")
    data = config["data"]
    assert data["CASPIAN_HUB_OPTIMIZER_ADDRESS"] == "dns:///optimizer:50052"
    assert data["CASPIAN_HUB_OPTIMIZER_ROUND_ROBIN"] == "true"
    assert data["CASPIAN_HUB_CARBON_ADDRESS"] == "carbon:50051"
    assert data["CASPIAN_HUB_DISPATCHER_ADDRESS"] == "dispatcher:50053"
    hub = one(base, "Deployment", "hub")
    assert hub["spec"]["replicas"] == 1 and hub["spec"]["strategy"] == {"type": "Recreate"}
    pod = hub["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
    db_dir = str(pathlib.PurePosixPath(data["CASPIAN_HUB_DB_PATH"]).parent)
    data_volume = {v["name"]: v for v in pod["volumes"]}[mounts[db_dir]]
    assert "emptyDir" in data_volume or "persistentVolumeClaim" in data_volume


def test_optimizer_is_headless_and_autoscaled(base):
    service = one(base, "Service", "optimizer")
    assert service["spec"]["clusterIP"] == "None", "round_robin over DNS needs every pod address"
    hpa = one(base, "HorizontalPodAutoscaler", "optimizer")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "optimizer",
    }
    assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    assert "replicas" not in one(base, "Deployment", "optimizer")["spec"], "the HPA owns the replica count"
    container = one(base, "Deployment", "optimizer")["spec"]["template"]["spec"]["containers"][0]
    assert "cpu" in container["resources"]["requests"], "CPU utilization needs a CPU request"


def test_dispatcher_mounts_the_spokes_kubeconfig_secret(base, tmp_path):
    [config] = find(base, "ConfigMap")
    path = pathlib.PurePosixPath(config["data"]["CASPIAN_DISPATCHER_KUBECONFIG"])
    pod = one(base, "Deployment", "dispatcher")["spec"]["template"]["spec"]
    [mount] = [m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == str(path.parent)]
    assert mount["readOnly"] is True
    [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == "caspian-spokes-kubeconfig"
    # The Secret as docs/operations.md tells operators to create it.
    secret = json.loads(
        kubectl(
            "create", "secret", "generic", "caspian-spokes-kubeconfig", "-n", "caspian",
            f"--from-file={path.name}=deploy/compose/kubeconfig.sim.yaml", "--dry-run=client", "-o", "json",
        )
    )  # fmt: skip
    assert errors("k8s/secret-v1.json", secret) == []
    assert set(secret["data"]) == {path.name}


def test_rbac_binds_only_the_dispatcher_to_what_a_spoke_needs(base):
    accounts = {d["metadata"]["name"] for d in find(base, "ServiceAccount")}
    namespaces = {d["metadata"]["name"] for d in find(base, "Namespace")}
    for binding in find(base, "RoleBinding") + find(base, "ClusterRoleBinding"):
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "caspian-dispatcher", "namespace": "caspian"}
        ]
        assert binding["subjects"][0]["name"] in accounts
        role_kind = binding["roleRef"]["kind"]
        assert find(base, role_kind, binding["roleRef"]["name"])
    [role] = find(base, "Role")
    assert role["metadata"]["namespace"] in namespaces
    assert role["rules"] == [
        {
            "apiGroups": ["batch"],
            "resources": ["jobs"],
            "verbs": ["create", "get", "list", "watch", "patch", "delete"],
        }
    ]
    for cluster_role in find(base, "ClusterRole"):
        for rule in cluster_role["rules"]:
            assert set(rule["verbs"]) <= {"get", "list", "watch"}, "cluster-wide rights are read-only"
            assert "secrets" not in rule["resources"]


def test_single_cluster_overlay_switches_the_dispatcher_to_in_cluster(single_cluster):
    [config] = find(single_cluster, "ConfigMap")
    assert config["data"]["CASPIAN_DISPATCHER_KUBECONFIG"] == ""
    pod = one(single_cluster, "Deployment", "dispatcher")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is True
    assert not [v for v in pod["volumes"] if "secret" in v]
    assert [m["mountPath"] for m in pod["containers"][0]["volumeMounts"]] == ["/tmp"]
    for other in ("hub", "carbon", "optimizer"):
        assert (
            one(single_cluster, "Deployment", other)["spec"]["template"]["spec"][
                "automountServiceAccountToken"
            ]
            is False
        )


def test_replicated_overlay_runs_two_hubs_on_postgresql_from_a_secret(replicated, base):
    hub = one(replicated, "Deployment", "hub")
    assert hub["spec"]["replicas"] == 2
    assert hub["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    pod = hub["spec"]["template"]["spec"]
    [container] = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["CASPIAN_HUB_DATABASE_URL"]["valueFrom"] == {
        "secretKeyRef": {"name": "caspian-db-app", "key": "uri"}
    }
    assert "value" not in env["CASPIAN_HUB_DATABASE_URL"], "the URL carries a password: only from a Secret"
    assert env["CASPIAN_HUB_REPLICA_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    # The base's hardening and probes are kept.
    base_container = one(base, "Deployment", "hub")["spec"]["template"]["spec"]["containers"][0]
    for key in ("securityContext", "readinessProbe", "livenessProbe", "envFrom", "resources"):
        assert container[key] == base_container[key], key
    selector = hub["spec"]["selector"]["matchLabels"]
    pdb = one(replicated, "PodDisruptionBudget", "hub")
    assert pdb["spec"] == {"minAvailable": 1, "selector": {"matchLabels": selector}}
    spread = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert spread["podAffinityTerm"]["labelSelector"]["matchLabels"] == selector
    assert not find(replicated, "Secret"), "no credentials in the manifests"
