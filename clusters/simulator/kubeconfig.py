"""Kubeconfig files for simulated spokes: one cluster, user and context per spoke, named after the spoke."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import yaml

USER = "caspian-dispatcher"


def kubeconfig_for(servers: Mapping[str, str], namespace: str = "caspian-jobs") -> dict[str, Any]:
    """`servers` maps a spoke name (also its context name) to its API URL, e.g. http://127.0.0.1:40123."""
    names = list(servers)
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "current-context": names[0] if names else "",
        "clusters": [{"name": name, "cluster": {"server": servers[name]}} for name in names],
        # The simulator does not check credentials; a token keeps clients that insist on one happy.
        "users": [{"name": USER, "user": {"token": "spoke-simulator"}}],
        "contexts": [
            {"name": name, "context": {"cluster": name, "user": USER, "namespace": namespace}}
            for name in names
        ],
    }


def write_kubeconfig(
    path: str | os.PathLike, servers: Mapping[str, str], namespace: str = "caspian-jobs"
) -> str:
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as fh:
        yaml.safe_dump(kubeconfig_for(servers, namespace), fh, sort_keys=False)
    os.replace(tmp, path)
    return path
