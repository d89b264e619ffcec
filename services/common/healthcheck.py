"""`python -m services.common.healthcheck ADDRESS`: a container healthcheck over the standard gRPC health service.

Exits 0 when `grpc.health.v1.Health/Check` answers SERVING, 1 otherwise (not serving, draining, unreachable,
or too slow), printing one line. TLS follows the service's own client settings when it serves TLS:

    python -m services.common.healthcheck 127.0.0.1:50050
    python -m services.common.healthcheck 127.0.0.1:50050 --tls-ca /certs/ca.crt --server-name hub
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def _read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def check(
    address: str,
    service: str = "",
    timeout: float = 3.0,
    *,
    ca_file: str = "",
    cert_file: str = "",
    key_file: str = "",
    server_name: str = "",
) -> tuple[bool, str]:
    """(serving, one line saying why) for one Health/Check call."""
    options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
    if ca_file:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=_read(ca_file),
            private_key=_read(key_file) if key_file else None,
            certificate_chain=_read(cert_file) if cert_file else None,
        )
        channel = grpc.secure_channel(address, credentials, options=options)
    else:
        channel = grpc.insecure_channel(address, options=options)
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            # The typeshed stub declares HealthStub without its methods.
            check = stub.Check  # type: ignore[attr-defined]
            response = check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as exc:
            return False, f"{address}: {exc.code().name}: {' '.join((exc.details() or '').split())}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    return response.status == health_pb2.HealthCheckResponse.SERVING, f"{address}: {status}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="healthcheck", description="gRPC health check for containers")
    parser.add_argument("address", help="host:port of the gRPC server")
    parser.add_argument("--service", default="", help="service name to check; empty checks the server")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the answer")
    parser.add_argument("--tls-ca", default="", help="PEM CA bundle; turns TLS on")
    parser.add_argument("--tls-cert", default="", help="PEM client certificate (mTLS)")
    parser.add_argument("--tls-key", default="", help="PEM client key (mTLS)")
    parser.add_argument("--server-name", default="", help="name to verify in the server's certificate")
    args = parser.parse_args(argv)
    serving, line = check(
        args.address,
        args.service,
        args.timeout,
        ca_file=args.tls_ca,
        cert_file=args.tls_cert,
        key_file=args.tls_key,
        server_name=args.server_name,
    )
    print(line, file=sys.stdout if serving else sys.stderr)
    return 0 if serving else 1


if __name__ == "__main__":
    sys.exit(main())
