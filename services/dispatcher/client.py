"""Blocking calls to one spoke's API server through the official kubernetes client."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s

Obj = dict[str, Any]


@dataclass(frozen=True)
class Timeouts:
    connect: float = 2.0
    read: float = 5.0

    @property
    def pair(self) -> tuple[float, float]:
        return (self.connect, self.read)


class SpokeClient:
    """Blocking calls through the official client, returning the API server's JSON as dicts (no model
    deserialisation on the hot paths)."""

    def __init__(self, configuration: k8s.Configuration, connections: int = 8):
        # Retries are ours (with backoff and a breaker); urllib3 must not retry behind our back.
        configuration.retries = False
        configuration.connection_pool_maxsize = connections
        self.api_client = k8s.ApiClient(configuration)
        self.batch = k8s.BatchV1Api(self.api_client)
        self.core = k8s.CoreV1Api(self.api_client)
        self.version_api = k8s.VersionApi(self.api_client)

    @staticmethod
    def _json(response) -> Obj:
        return json.loads(response.data)

    def version(self, timeout: tuple[float, float]) -> Obj:
        return self._json(self.version_api.get_code(_preload_content=False, _request_timeout=timeout))

    def create_job(self, namespace: str, manifest: Obj, timeout: tuple[float, float]) -> Obj:
        body = k8s.V1Job.from_dict(manifest)
        if body is None:
            raise ValueError("the Job manifest is empty")
        return self._json(
            self.batch.create_namespaced_job(
                namespace, body, _preload_content=False, _request_timeout=timeout
            )
        )

    def read_job(self, namespace: str, name: str, timeout: tuple[float, float]) -> Obj:
        return self._json(
            self.batch.read_namespaced_job(name, namespace, _preload_content=False, _request_timeout=timeout)
        )

    def patch_job(self, namespace: str, name: str, patch: Obj, timeout: tuple[float, float]) -> Obj:
        """A JSON merge patch (RFC 7386); a metadata.resourceVersion in it makes the API server refuse (409) a
        patch of a Job that has changed since it was read."""
        return self._json(
            self.batch.patch_namespaced_job(
                name,
                namespace,
                patch,
                _content_type="application/merge-patch+json",
                _preload_content=False,
                _request_timeout=timeout,
            )
        )

    def delete_job(self, namespace: str, name: str, uid: str, timeout: tuple[float, float]) -> Obj:
        options = k8s.V1DeleteOptions(
            propagation_policy="Background", preconditions=k8s.V1Preconditions(uid=uid)
        )
        return self._json(
            self.batch.delete_namespaced_job(
                name,
                namespace,
                body=options,
                propagation_policy="Background",
                _preload_content=False,
                _request_timeout=timeout,
            )
        )

    def list_jobs(self, namespace: str, selector: str, timeout: tuple[float, float]) -> Obj:
        return self._json(
            self.batch.list_namespaced_job(
                namespace, label_selector=selector, _preload_content=False, _request_timeout=timeout
            )
        )

    def watch_jobs(
        self,
        namespace: str,
        selector: str,
        resource_version: str,
        server_timeout: int,
        timeout: tuple[float, float],
    ):
        """The raw streaming response of a Job watch; read it line by line, close it when done."""
        return self.batch.list_namespaced_job(
            namespace,
            label_selector=selector,
            watch=True,
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=server_timeout,
            _preload_content=False,
            _request_timeout=timeout,
        )

    def list_nodes(self, timeout: tuple[float, float]) -> Obj:
        return self._json(self.core.list_node(_preload_content=False, _request_timeout=timeout))

    def list_pods(self, field_selector: str, timeout: tuple[float, float]) -> Obj:
        return self._json(
            self.core.list_pod_for_all_namespaces(
                field_selector=field_selector, _preload_content=False, _request_timeout=timeout
            )
        )

    def close(self) -> None:
        self.api_client.close()
