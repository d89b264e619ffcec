"""The spokes a dispatcher serves, from a kubeconfig (one per context) or from the pod it runs in."""

from __future__ import annotations

import os
from dataclasses import dataclass

from kubernetes import client as k8s
from kubernetes import config as k8s_config


@dataclass(frozen=True)
class SpokeConfig:
    cluster: str
    kube_context: str
    server: str


def load_spoke_configs(
    kubeconfig: str, contexts: tuple[str, ...] = (), in_cluster_name: str = "in-cluster"
) -> list[tuple[SpokeConfig, k8s.Configuration]]:
    """One (spoke, client configuration) per kube context; the context name is the cluster name."""
    if not kubeconfig and os.environ.get("KUBERNETES_SERVICE_HOST"):
        configuration = k8s.Configuration()
        k8s_config.load_incluster_config(client_configuration=configuration)
        return [(SpokeConfig(in_cluster_name, "", configuration.host), configuration)]
    path = kubeconfig or os.path.expanduser(k8s_config.KUBE_CONFIG_DEFAULT_LOCATION)
    if not kubeconfig and not os.path.exists(path):
        return []
    available, _ = k8s_config.list_kube_config_contexts(config_file=path)
    names = [c["name"] for c in available]
    missing = [name for name in contexts if name not in names]
    if missing:
        raise ValueError(f"contexts not in {path}: {', '.join(missing)}")
    spokes = []
    for name in contexts or names:
        configuration = k8s.Configuration()
        k8s_config.load_kube_config(
            config_file=path, context=name, client_configuration=configuration, persist_config=False
        )
        spokes.append((SpokeConfig(name, name, configuration.host), configuration))
    return spokes
