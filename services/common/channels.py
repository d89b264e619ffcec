"""Client channels from one service to another: made once, reused, with a deadline on every call.

`round_robin` spreads calls over every address a DNS name resolves to (several optimizer replicas).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import grpc

_RETRY_CONFIG = {
    "methodConfig": [
        {
            "name": [{}],
            "retryPolicy": {
                "maxAttempts": 3,
                "initialBackoff": "0.1s",
                "maxBackoff": "1s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ]
}


@dataclass(frozen=True)
class ClientTLS:
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.ca_file)


def open_channel(
    target: str,
    *,
    round_robin: bool = False,
    tls: ClientTLS | None = None,
    max_message_bytes: int = 64 << 20,
    interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
) -> grpc.aio.Channel:
    config = dict(_RETRY_CONFIG)
    if round_robin:
        config["loadBalancingConfig"] = [{"round_robin": {}}]
    options = [
        ("grpc.service_config", json.dumps(config)),
        ("grpc.enable_retries", 1),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", 30_000),
        # After a dependency restarts, reconnect within seconds rather than grpc's default of up to 120 s.
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 5_000),
    ]
    chain = list(interceptors) or None
    if round_robin and not target.startswith(("dns:", "ipv4:", "ipv6:", "unix:")):
        target = f"dns:///{target}"
    if tls is not None and tls.enabled:
        with open(tls.ca_file, "rb") as fh:
            ca = fh.read()
        key = cert = None
        if tls.cert_file and tls.key_file:
            with open(tls.key_file, "rb") as fh:
                key = fh.read()
            with open(tls.cert_file, "rb") as fh:
                cert = fh.read()
        creds = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)
        return grpc.aio.secure_channel(target, creds, options=options, interceptors=chain)
    return grpc.aio.insecure_channel(target, options=options, interceptors=chain)
