"""Several simulated spokes as child processes, and the kubeconfig that reaches them.

    python -m clusters.simulator.fleet --kubeconfig run/spokes.kubeconfig [--state-dir run/spokes]

starts carbon-kr, carbon-jp and carbon-cn (or the --spoke names given), writes the kubeconfig (one context per
spoke, named after it), prints one line per spoke, and stops them all on SIGTERM or Ctrl-C. The launcher and
the dispatch benchmark use `start_spokes` the same way.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
from collections.abc import Mapping, Sequence

from clusters.simulator.kubeconfig import write_kubeconfig
from clusters.simulator.spec import DEFAULT_SPOKES
from services.launcher.procs import ServiceProcess


def start_spokes(
    names: Sequence[str] = DEFAULT_SPOKES,
    *,
    env: Mapping[str, str] | None = None,
    state_dir: str | None = None,
    extra_args: Sequence[str] = (),
    host: str = "127.0.0.1",
) -> dict[str, ServiceProcess]:
    """Start one simulator process per name on a free port; on any failure the started ones are stopped."""
    procs: dict[str, ServiceProcess] = {}
    try:
        for name in names:
            args = ["--name", name, "--host", host, "--port", "0", *extra_args]
            if state_dir:
                os.makedirs(state_dir, exist_ok=True)
                args += ["--state-file", os.path.join(state_dir, f"{name}.json")]
            procs[name] = ServiceProcess("clusters.simulator", env=dict(env or {}), args=tuple(args)).start()
    except BaseException:
        stop_spokes(procs)
        raise
    return procs


def servers(procs: Mapping[str, ServiceProcess]) -> dict[str, str]:
    return {name: f"http://{proc.address}" for name, proc in procs.items()}


def stop_spokes(procs: Mapping[str, ServiceProcess]) -> None:
    for proc in procs.values():
        proc.terminate()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m clusters.simulator.fleet", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--kubeconfig", required=True, help="where to write the kubeconfig")
    parser.add_argument("--spoke", action="append", dest="spokes", help="spoke name (repeatable)")
    parser.add_argument("--state-dir", default=None, help="keep each spoke's objects in <dir>/<name>.json")
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    procs = start_spokes(args.spokes or DEFAULT_SPOKES, env=os.environ, state_dir=args.state_dir)
    try:
        write_kubeconfig(args.kubeconfig, servers(procs))
        for name, url in servers(procs).items():
            print(f"{name:<11} {url}", flush=True)
        print(f"kubeconfig {args.kubeconfig}; Ctrl-C stops the spokes", flush=True)
        while not stop.wait(0.5):
            for name, proc in procs.items():
                if proc.proc is not None and proc.proc.poll() is not None:
                    print(f"{name} exited with {proc.proc.returncode}; stopping", flush=True)
                    stop.set()
    finally:
        stop_spokes(procs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
