"""The spoke definitions users get: kind configs (schema-checked), the simulator's capacities, the dispatcher's
RBAC on a spoke, and kind-up.sh, run with stand-ins for Docker and kind."""

import json
import os
import pathlib
import shutil
import stat
import subprocess

import jsonschema
import pytest
import yaml
from kubernetes.utils.quantity import parse_quantity

from clusters.simulator.spec import DEFAULT_SPOKES, load_spokes
from services.dispatcher.kubeconfig import load_spoke_configs
from tests.ops.schemas import errors, k8s_schema_name

ROOT = pathlib.Path(__file__).resolve().parents[2]
KIND_SCHEMA = json.loads((ROOT / "clusters" / "schemas" / "kind-cluster.json").read_text())
RBAC = ROOT / "deploy" / "spoke-rbac" / "dispatcher-rbac.yaml"


@pytest.mark.parametrize("name", DEFAULT_SPOKES)
def test_kind_config_is_valid_with_one_control_plane_and_two_workers(name):
    path = ROOT / "clusters" / f"kind-{name.removeprefix('carbon-')}.yaml"
    config = yaml.safe_load(path.read_text())
    jsonschema.Draft7Validator(KIND_SCHEMA).validate(config)
    assert config["name"] == name
    assert [n["role"] for n in config["nodes"]] == ["control-plane", "worker", "worker"]
    zone = load_spokes()[name].zone
    assert {n["labels"]["caspian.io/zone"] for n in config["nodes"] if n["role"] == "worker"} == {zone}


def test_kind_schema_rejects_a_broken_config():
    broken = {"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4", "nodes": [{"role": "master"}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(KIND_SCHEMA).validate(broken)


def test_simulated_spokes_have_documented_shapes():
    spokes = load_spokes()
    assert list(spokes) == list(DEFAULT_SPOKES)
    assert {s.zone for s in spokes.values()} == {"KR", "JP-TK", "CN"}
    for spoke in spokes.values():
        assert [n.role for n in spoke.nodes] == ["control-plane", "worker", "worker"]
        assert [n.name for n in spoke.nodes] == [
            f"{spoke.name}-control-plane",
            f"{spoke.name}-worker",
            f"{spoke.name}-worker2",
        ]
        for node in spoke.nodes:
            for resource, amount in node.allocatable.items():
                assert 0 < parse_quantity(amount) <= parse_quantity(node.capacity[resource])


def test_rbac_grants_only_what_the_dispatcher_uses():
    documents = [d for d in yaml.safe_load_all(RBAC.read_text()) if d]
    for document in documents:
        assert errors(k8s_schema_name(document), document) == [], document["kind"]
    by_kind = {}
    for document in documents:
        by_kind.setdefault(document["kind"], []).append(document)
    (role,) = by_kind["Role"]
    assert role["metadata"]["namespace"] == "caspian-jobs"
    assert role["rules"] == [
        {
            "apiGroups": ["batch"],
            "resources": ["jobs"],
            "verbs": ["create", "get", "list", "watch", "patch", "delete"],
        }
    ]
    (cluster_role,) = by_kind["ClusterRole"]
    assert cluster_role["rules"] == [
        {"apiGroups": [""], "resources": ["nodes", "pods"], "verbs": ["get", "list"]}
    ]
    subject = {"kind": "ServiceAccount", "name": "caspian-dispatcher", "namespace": "caspian-system"}
    for binding in by_kind["RoleBinding"] + by_kind["ClusterRoleBinding"]:
        assert binding["subjects"] == [subject]
    assert {b["roleRef"]["name"] for b in by_kind["RoleBinding"] + by_kind["ClusterRoleBinding"]} == {
        "caspian-dispatcher-jobs",
        "caspian-dispatcher-capacity",
    }
    assert sorted(by_kind) == [
        "ClusterRole",
        "ClusterRoleBinding",
        "Namespace",
        "Role",
        "RoleBinding",
        "Secret",
        "ServiceAccount",
    ]


FAKE_KUBECTL = """#!/usr/bin/env bash
# Stands in for kubectl against the kind clusters; `--kubeconfig FILE config ...` goes to the real kubectl.
echo "$*" >>"$CALLS"
if [ "$1" = "--kubeconfig" ]; then exec "$REAL_KUBECTL" "$@"; fi
case "$*" in
  *"apply -f"*) exit 0 ;;
  *"get secret caspian-dispatcher-token"*) printf 'c2VjcmV0LXRva2Vu' ;;
  *"config view"*"cluster.server"*)
    case "$*" in *carbon-kr*) port=16443 ;; *carbon-jp*) port=26443 ;; *) port=36443 ;; esac
    printf 'https://127.0.0.1:%s' "$port" ;;
  *"config view"*"certificate-authority-data"*) printf 'Q0EtREFUQQ==' ;;
  *) echo "unexpected kubectl $*" >&2; exit 1 ;;
esac
"""

FAKE_KIND = """#!/usr/bin/env bash
echo "kind $*" >>"$CALLS"
exit 0
"""


def test_kind_up_creates_spokes_and_writes_a_kubeconfig_the_dispatcher_loads(tmp_path):
    real = shutil.which("kubectl")
    if real is None:
        pytest.skip("kubectl is not installed (make tools installs Debian's kubernetes-client)")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("kubectl", FAKE_KUBECTL), ("kind", FAKE_KIND), ("docker", "#!/bin/sh\nexit 0\n")):
        path = bin_dir / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    out = tmp_path / "spokes.kubeconfig"
    calls = tmp_path / "calls.txt"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "REAL_KUBECTL": real,
        "CALLS": str(calls),
        "HOME": str(tmp_path),
        "CASPIAN_KIND_KUBECONFIG": str(out),
        "CASPIAN_KIND_REGISTER": "0",
    }
    result = subprocess.run(
        ["bash", str(ROOT / "clusters" / "kind-up.sh")], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    log = calls.read_text()
    for name in DEFAULT_SPOKES:
        assert f"kind create cluster --config clusters/kind-{name.removeprefix('carbon-')}.yaml" in log
        assert f"--context kind-{name} apply -f deploy/spoke-rbac/dispatcher-rbac.yaml" in log
    config = yaml.safe_load(out.read_text())
    assert {c["name"] for c in config["contexts"]} == set(DEFAULT_SPOKES)
    assert {u["user"]["token"] for u in config["users"]} == {"secret-token"}
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    spokes = load_spoke_configs(str(out))
    assert {(s.cluster, s.kube_context) for s, _ in spokes} == {(n, n) for n in DEFAULT_SPOKES}
    assert {s.cluster: s.server for s, _ in spokes} == {
        "carbon-kr": "https://127.0.0.1:16443",
        "carbon-jp": "https://127.0.0.1:26443",
        "carbon-cn": "https://127.0.0.1:36443",
    }
