"""python -m services.console: parse settings, build, serve until SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from aiohttp import web

from services.common.logs import configure_logging
from services.common.settings import exit_on_bad_settings
from services.console import settings as console_settings
from services.console.app import build_app
from services.console.gateway import Gateway
from services.console.security import CsrfGuard, read_key

log = logging.getLogger("caspian.console")


def _read_token(path: str) -> str:
    if not path:
        return ""
    with open(path, encoding="utf-8") as fh:
        return fh.read().strip()


async def serve(settings: console_settings.ConsoleSettings) -> None:
    gateway = Gateway(
        settings.hub_address,
        settings.carbon_address,
        timeout=settings.timeout_seconds,
        tls=settings.client_tls(),
        carbon_token=_read_token(settings.carbon_token_file),
    )
    app = build_app(settings, gateway, CsrfGuard(read_key(settings.secret_file)))
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    port = runner.addresses[0][1]  # the bound port when 0 was asked for
    address = f"{settings.host}:{port}"
    # The launcher and the tests read this line; the console serves HTTP only (pages, /events, /metrics, /healthz),
    # so its one address stands in every field.
    print(f"READY service=console grpc={address} metrics={address} http=http://{address}/", flush=True)
    log.info("serving", extra={"address": address, "hub": settings.hub_address})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await runner.cleanup()
    log.info("stopped")


def main() -> None:
    settings = exit_on_bad_settings(console_settings.load)
    configure_logging("console", settings.log_level)
    try:
        asyncio.run(serve(settings))
    except KeyboardInterrupt:
        pass
    sys.stdout.flush()


if __name__ == "__main__":
    main()
