"""`make run` with hub bearer tokens on: the launcher registers the spokes with an admin token it is given or
makes, so that security can be tried locally."""

from __future__ import annotations

import os

import grpc
import pytest

from caspian.v1 import hub_pb2, hub_pb2_grpc
from tests.launcher.support import Launcher, run_launcher


def _hub_address(launcher: Launcher) -> str:
    return launcher.wait_for("  hub ").split()[1]


def _clusters(address: str, token: str = "") -> list[str]:
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    with grpc.insecure_channel(address) as channel:
        stub = hub_pb2_grpc.HubServiceStub(channel)
        response = stub.ListClusters(hub_pb2.ListClustersRequest(), timeout=10, metadata=metadata)
    return sorted(c.name for c in response.clusters)


def test_auth_makes_tokens_registers_the_spokes_and_refuses_callers_without_one(tmp_path):
    launcher = Launcher("--auth", "--ephemeral-ports", "--no-view", "--workdir", str(tmp_path))
    try:
        launcher.wait_for("all services up")
        address = _hub_address(launcher)
        assert "--token-file" in launcher.wait_for("hub tokens")
        admin = (tmp_path / "admin-token").read_text().strip()
        assert (tmp_path / "admin-token").stat().st_mode & 0o077 == 0
        assert _clusters(address, admin) == ["carbon-cn", "carbon-jp", "carbon-kr"]
        with pytest.raises(grpc.RpcError) as refused:
            _clusters(address)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert admin not in "\n".join(launcher.lines)
    finally:
        assert launcher.stop() == 0


def test_a_token_table_without_an_admin_is_refused_in_one_line_before_start(tmp_path):
    table = tmp_path / "tokens.yaml"
    table.write_text("- {token: tok-a, tenant: team-a}\n")
    env = {**os.environ, "CASPIAN_HUB_AUTH_TOKENS_FILE": str(table)}
    result = run_launcher("--ephemeral-ports", "--workdir", str(tmp_path / "run"), env=env)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1 and "admin" in result.stderr
    assert not (tmp_path / "run" / "kubeconfig").exists()


def test_the_admin_entry_of_a_given_token_table_registers_the_spokes(tmp_path):
    table = tmp_path / "tokens.yaml"
    table.write_text("- {token: tok-a, tenant: team-a}\n- {token: tok-admin, tenant: ops, roles: [admin]}\n")
    launcher = Launcher(
        "--ephemeral-ports",
        "--no-view",
        "--workdir",
        str(tmp_path / "run"),
        env={"CASPIAN_HUB_AUTH_TOKENS_FILE": str(table)},
    )
    try:
        launcher.wait_for("all services up")
        assert _clusters(_hub_address(launcher), "tok-admin") == ["carbon-cn", "carbon-jp", "carbon-kr"]
    finally:
        launcher.stop()
