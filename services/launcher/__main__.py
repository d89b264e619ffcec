"""`make run`: start the whole system locally (three simulated spokes, carbon replaying real KR and JP-TK data
with synthetic CN, optimizer, dispatcher, hub), register the spokes, and show a live view until Ctrl-C.
`make demo` (--demo) runs a sample workload to completion instead, prints the placements and exits.

The clock is simulated and accelerated: by default one real second is 720 simulated seconds (a trace hour every
5 s), starting 2023-06-01 00:00 UTC. CASPIAN_RUN_SPEEDUP and CASPIAN_RUN_START change that.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import signal
import threading

from rich.console import Console
from rich.live import Live

from services.launcher.stack import ROOT, Stack, StackConfig

DEMO_SPEEDUP = 1440.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m services.launcher", description=__doc__.splitlines()[0])
    parser.add_argument("--demo", action="store_true", help="run the demo workload to completion and exit")
    parser.add_argument("--no-view", action="store_true", help="print addresses only; no live view")
    parser.add_argument(
        "--ephemeral-ports", action="store_true", help="pick free ports instead of 50050-50053"
    )
    parser.add_argument(
        "--workdir", default=str(ROOT / "var" / "run"), help="kubeconfig, database, spoke state"
    )
    parser.add_argument("--speedup", type=float, default=float(os.environ.get("CASPIAN_RUN_SPEEDUP", 0) or 0))
    parser.add_argument("--start", default=os.environ.get("CASPIAN_RUN_START", "2023-06-01T00:00:00Z"))
    return parser


def _scheduler_env(speedup: float) -> dict[str, dict[str, str]]:
    # Cycles every 15 simulated minutes, a 24-hour horizon of 15-minute slots: about a second of real time
    # between cycles at the default speed-up.
    hub = {
        "CASPIAN_HUB_SCHEDULE_PERIOD_SECONDS": "900",
        "CASPIAN_HUB_DEBOUNCE_SECONDS": "60",
        "CASPIAN_HUB_DEBOUNCE_MAX_SECONDS": "300",
        "CASPIAN_HUB_SLOT_SECONDS": "900",
        "CASPIAN_HUB_HORIZON_SLOTS": "96",
        "CASPIAN_HUB_SOLVE_TIME_LIMIT_SECONDS": "10",
    }
    return {"hub": hub}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console()
    speedup = args.speedup or (DEMO_SPEEDUP if args.demo else 720.0)
    config = StackConfig(
        workdir=pathlib.Path(args.workdir),
        fixed_ports=not (args.ephemeral_ports or args.demo),
        clock_start=args.start,
        clock_speedup=speedup,
        env=_scheduler_env(speedup),
        console=not args.demo,
    )
    if args.demo:
        # A fresh database each demo, so totals are this run's.
        for stale in config.workdir.glob("hub.db*"):
            stale.unlink()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    console.print(f"starting CASPIAN (simulated clock from {args.start}, {speedup:g}x)")
    stack = Stack(config)
    try:
        stack.start()
        for proc in stack.all_processes():
            label = proc.args[1] if proc.args else proc.module.rsplit(".", 1)[-1]
            console.print(f"  {label:<11} {proc.address:<22} metrics {proc.metrics_address}", soft_wrap=True)
        console.print(f"  kubeconfig {stack.kubeconfig}")
        if stack.console_url:
            console.print(f"  web console {stack.console_url}", soft_wrap=True)
        if args.demo:
            from services.launcher.demo import run_demo

            return run_demo(stack.hub_address, console)
        console.print("all services up; Ctrl-C stops them")
        if args.no_view:
            while not stop.wait(0.5):
                pass
            return 0
        _live_view(stack, stop)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        stack.stop()
        console.print("stopped")


def _live_view(stack: Stack, stop: threading.Event) -> None:
    from services.launcher.view import StackClient, render

    client = StackClient(stack.hub_address, stack.services["carbon"].address)
    try:
        with Live(render(client.snapshot()), refresh_per_second=2) as live:
            while not stop.wait(1.0):
                live.update(render(client.snapshot()))
    finally:
        client.close()


if __name__ == "__main__":
    raise SystemExit(main())
