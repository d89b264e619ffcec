"""python -m clusters.simulator --name carbon-kr --port 0: one simulated spoke until SIGTERM.

Prints `READY service=<name> grpc=<host:port> metrics=off url=http://<host:port>` once it serves (the same
line the services print, so services.launcher.procs.ServiceProcess can start it; the address is HTTP here).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import signal

from clusters.simulator.server import DEFAULT_NAMESPACES, SpokeSimulator
from services.common.clock import clock_from_settings, load_clock_settings
from services.common.logs import configure_logging
from services.common.settings import exit_on_bad_settings


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m clusters.simulator", description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="cluster (and kubeconfig context) name, e.g. carbon-kr")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--state-file", default=None, help="keep the objects here, to survive a restart")
    parser.add_argument(
        "--namespace",
        action="append",
        dest="namespaces",
        help=f"namespace to create at start (repeatable; default {','.join(DEFAULT_NAMESPACES)})",
    )
    parser.add_argument(
        "--bookmark-seconds", type=float, default=5.0, help="real seconds between watch bookmarks"
    )
    parser.add_argument(
        "--default-runtime-seconds",
        type=float,
        default=60.0,
        help="how long a Job without caspian.io/expected-runtime-seconds runs, in clock seconds",
    )
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    clock = clock_from_settings(exit_on_bad_settings(load_clock_settings))
    spoke = SpokeSimulator(
        args.name,
        clock,
        namespaces=tuple(args.namespaces or DEFAULT_NAMESPACES),
        state_file=args.state_file,
        bookmark_seconds=args.bookmark_seconds,
        default_runtime_seconds=args.default_runtime_seconds,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await spoke.start(args.host, args.port)
    # Everything loaded so far lives as long as the process: keep it out of full garbage collections.
    gc.freeze()
    address = f"{args.host}:{spoke.port}"
    print(f"READY service={args.name} grpc={address} metrics=off url=http://{address}", flush=True)
    await stop.wait()
    await spoke.stop()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    configure_logging(f"spoke-{args.name}", args.log_level)
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
