"""Console settings, from CASPIAN_CONSOLE_* variables."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.channels import ClientTLS
from services.common.settings import load_settings, port, positive, setting

PREFIX = "CASPIAN_CONSOLE_"


@dataclass(frozen=True)
class ConsoleSettings:
    host: str = setting("127.0.0.1", None, "address to bind the HTTP server to")
    port: int = setting(8080, port, "HTTP port; 0 picks a free one")
    hub_address: str = setting("127.0.0.1:50050", None, "the hub's gRPC address")
    carbon_address: str = setting("127.0.0.1:50051", None, "the carbon service's gRPC address")
    timeout_seconds: float = setting(10.0, positive, "deadline of every unary call to the hub or carbon")
    batch_seconds: float = setting(
        0.1, positive, "live updates are coalesced per job over this window before they go to the browser"
    )
    batch_max_jobs: int = setting(2000, positive, "most jobs in one pushed batch; more go in the next one")
    clock_seconds: float = setting(1.0, positive, "how often an open page gets the hub's clock and totals")
    history_hours: float = setting(24.0, positive, "intensity history shown per zone")
    forecast_slot_seconds: int = setting(900, positive, "forecast slot asked of the carbon service")
    forecast_slots: int = setting(96, positive, "forecast slots asked of the carbon service")
    carbon_token_file: str = setting(
        "", None, "file holding a bearer token for the carbon service, when it requires one"
    )
    secret_file: str = setting(
        "", None, "file holding the key that signs CSRF tokens; empty: a random key per process"
    )
    secure_cookies: bool = setting(False, None, "mark the token cookie Secure (serve the console over HTTPS)")
    client_ca_file: str = setting("", None, "PEM CA bundle to verify the hub and carbon; turns TLS on")
    client_cert_file: str = setting("", None, "PEM certificate presented to the hub and carbon (mTLS)")
    client_key_file: str = setting("", None, "PEM private key for CLIENT_CERT_FILE")
    log_level: str = setting("INFO", None, "log level")

    def client_tls(self) -> ClientTLS:
        return ClientTLS(self.client_ca_file, self.client_cert_file, self.client_key_file)


def load(env=None) -> ConsoleSettings:
    return load_settings(ConsoleSettings, PREFIX, env)
