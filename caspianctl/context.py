"""What every command gets: the hub client, the output and the parsed arguments."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

import grpc

from caspian.v1 import hub_pb2
from caspianctl.client import Connection, HubClient
from caspianctl.output import Output
from services.common.channels import ClientTLS
from services.common.timeconv import from_timestamp

EXIT_OK = 0
# Some items of a bulk request were refused, or a waited-for job did not succeed.
EXIT_PARTIAL = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
# 64 + the gRPC status code when the hub refuses a call, as grpcurl does.
GRPC_EXIT_BASE = 64


class Ctl:
    def __init__(self, args: argparse.Namespace, output: Output):
        self.args = args
        self.out = output
        tls = ClientTLS(args.tls_ca or "", args.tls_cert or "", args.tls_key or "")
        self.connection = Connection(
            args.hub, args.timeout, args.token or "", tls, args.tls_server_name or ""
        )
        self._client: HubClient | None = None

    @property
    def hub(self) -> HubClient:
        if self._client is None:
            self._client = HubClient(self.connection)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def hub_now(self) -> datetime:
        """The hub's clock, so offsets like "6h" mean the same under a simulated clock."""
        try:
            stats = self.hub.call("GetStats", hub_pb2.GetStatsRequest())
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise
            stats = hub_pb2.GetStatsResponse()
        if stats.HasField("now"):
            return from_timestamp(stats.now)
        self.out.note("the hub did not report its clock; offsets count from this machine's clock")
        return datetime.now(UTC)
