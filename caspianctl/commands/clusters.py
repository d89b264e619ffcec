"""`caspianctl clusters [list|register|deregister]`."""

from __future__ import annotations

import grpc

from caspian.v1 import hub_pb2
from caspianctl import render
from caspianctl.context import Ctl
from caspianctl.output import data_of
from caspianctl.specs import cluster_from_document, load_documents


def cmd_clusters_list(ctl: Ctl) -> int:
    response = ctl.hub.call("ListClusters", hub_pb2.ListClustersRequest())
    ctl.out.show(
        response,
        lambda wide: render.cluster_table(response.clusters, wide=wide),
        [f"cluster/{c.name}" for c in response.clusters],
    )
    ready = sum(c.ready for c in response.clusters)
    ctl.out.footer(f"{ready} of {len(response.clusters)} ready")
    return 0


def cmd_clusters_register(ctl: Ctl) -> int:
    docs = [doc for path in ctl.args.files for doc in load_documents(path, ("items", "clusters"))]
    clusters = [cluster_from_document(doc) for doc in docs]
    registered = []
    for cluster in clusters:
        try:
            response = ctl.hub.call("RegisterCluster", hub_pb2.RegisterClusterRequest(cluster=cluster))
            verb = "registered"
        except grpc.RpcError as exc:
            if not (ctl.args.upsert and exc.code() == grpc.StatusCode.ALREADY_EXISTS):
                raise
            response = ctl.hub.call("UpdateCluster", hub_pb2.UpdateClusterRequest(cluster=cluster))
            verb = "updated"
        registered.append(response.cluster)
        if ctl.out.is_table:
            c = response.cluster
            # The hub probes a new cluster at once: a kube context the dispatcher does not know shows here.
            flag = "" if c.ready else f"; NOT READY: {c.not_ready_reason or 'no reason given'}"
            ctl.out.line(f"{c.name} {verb} (zone {c.zone or '-'}{flag})")
    if not ctl.out.is_table:
        ctl.out.show([data_of(c) for c in registered], names=[f"cluster/{c.name}" for c in registered])
    return 0


def cmd_clusters_deregister(ctl: Ctl) -> int:
    for name in ctl.args.names:
        ctl.hub.call("DeregisterCluster", hub_pb2.DeregisterClusterRequest(name=name))
        if ctl.out.is_table:
            ctl.out.line(f"{name} deregistered")
        elif ctl.out.format == "name":
            ctl.out.line(f"cluster/{name}")
    return 0
