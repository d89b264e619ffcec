"""What a client learns before it asks for objects: the server version and the API discovery documents."""

from __future__ import annotations

from clusters.simulator.store import RESOURCES, Obj

SERVER_VERSION = {
    "major": "1",
    "minor": "31",
    "gitVersion": "v1.31.0",
    "gitCommit": "caspian-spoke-simulator",
    "gitTreeState": "clean",
    "buildDate": "2024-08-13T00:00:00Z",
    "goVersion": "go1.22.5",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def discovery_document(path: str, address: str) -> Obj | None:
    """The discovery document at `path` (/api, /apis, a group or a group version), or None."""
    if path == "/api":
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}],
        }
    batch = {
        "name": "batch",
        "versions": [{"groupVersion": "batch/v1", "version": "v1"}],
        "preferredVersion": {"groupVersion": "batch/v1", "version": "v1"},
    }
    if path == "/apis":
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [batch]}
    if path == "/apis/batch":
        return {"kind": "APIGroup", "apiVersion": "v1", **batch}
    group = {"/api/v1": "", "/apis/batch/v1": "batch"}.get(path)
    if group is None:
        return None
    resources = []
    for res in RESOURCES.values():
        if res.group != group:
            continue
        entry: Obj = {
            "name": res.plural,
            "singularName": res.kind.lower(),
            "namespaced": res.namespaced,
            "kind": res.kind,
            "verbs": list(res.verbs),
        }
        if res.short_names:
            entry["shortNames"] = list(res.short_names)
        if res.categories:
            entry["categories"] = list(res.categories)
        resources.append(entry)
        if res.plural in ("jobs", "pods", "nodes", "namespaces"):
            resources.append(
                {
                    "name": f"{res.plural}/status",
                    "singularName": "",
                    "namespaced": res.namespaced,
                    "kind": res.kind,
                    "verbs": ["get"],
                }
            )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/v1" if group else "v1",
        "resources": resources,
    }
