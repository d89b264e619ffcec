"""`make run`: start the whole system locally (three simulated spokes, carbon replaying real KR and JP-TK data
with synthetic CN, optimizer, dispatcher, hub), register the spokes, and show a live view until Ctrl-C.
`make demo` (--demo) runs a sample workload to completion instead, prints the placements and exits.

The clock is simulated and accelerated: by default one real second is 720 simulated seconds (a trace hour every
5 s), starting 2023-06-01 00:00 UTC. CASPIAN_RUN_SPEEDUP and CASPIAN_RUN_START change that. A run directory
(var/run; var/demo for the demo) holds one stack at a time; the next start resumes its simulated clock.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import signal
import sys
import threading
import time

from rich.console import Console

from services.common.timeconv import parse_time
from services.launcher.procs import StartupFailed
from services.launcher.rundir import RunDirectory, StartRefused, busy_ports
from services.launcher.stack import ROOT, Stack, StackConfig
from services.launcher.tokens import HubAuth, admin_token_from, make_tokens

DEFAULT_START = "2023-06-01T00:00:00Z"
DEMO_SPEEDUP = 720.0
# What `make run` reads from the environment (docs/configuration.md is generated from this).
RUN_ENVIRONMENT = (
    ("CASPIAN_RUN_SPEEDUP", "720", "simulated seconds per real second (--speedup); the demo uses the same"),
    (
        "CASPIAN_RUN_START",
        DEFAULT_START,
        "simulated time a fresh run starts at (--start); a resumed run goes on from its saved clock",
    ),
    (
        "CASPIAN_RUN_ADMIN_TOKEN_FILE",
        "(empty)",
        "with CASPIAN_HUB_AUTH_TOKENS_FILE set: file holding the admin token the spokes are registered with "
        "(default: the first admin entry of that table)",
    ),
)
# How often (real seconds) the simulated clock's reading is saved for the next start.
SAVE_CLOCK_EVERY = 1.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m services.launcher", description=__doc__.splitlines()[0])
    parser.add_argument("--demo", action="store_true", help="run the demo workload to completion and exit")
    parser.add_argument(
        "--no-view",
        action="store_true",
        help="no live view: one line per scheduling cycle instead (the default when stdout is not a terminal)",
    )
    parser.add_argument(
        "--ephemeral-ports", action="store_true", help="pick free ports instead of 50050-50053 and 9100-9103"
    )
    parser.add_argument(
        "--workdir",
        default=None,
        help="run directory: kubeconfig, database, spoke state, logs (default var/run; var/demo for --demo)",
    )
    parser.add_argument(
        "--fresh", action="store_true", help="start over: forget the database and spokes of the previous run"
    )
    parser.add_argument(
        "--auth",
        action="store_true",
        help="turn hub bearer tokens on, with an admin and a demo token made in the run directory",
    )
    parser.add_argument(
        "--wall-clock",
        action="store_true",
        help="run on real time instead of the simulated clock (for live Electricity Maps data)",
    )
    parser.add_argument("--speedup", type=float, default=float(os.environ.get("CASPIAN_RUN_SPEEDUP", 0) or 0))
    parser.add_argument(
        "--start",
        default=os.environ.get("CASPIAN_RUN_START") or None,
        help=f"simulated time of a fresh run (default {DEFAULT_START})",
    )
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


def default_workdir(demo: bool) -> pathlib.Path:
    """The demo never shares a directory with `make run`: its fresh start would wipe the run's state."""
    return ROOT / "var" / ("demo" if demo else "run")


def _clock_start(args: argparse.Namespace, rundir: RunDirectory) -> tuple[str, str]:
    """The simulated time to start at, and one line saying whether this run resumes or starts fresh."""
    if args.demo or args.fresh:
        rundir.clear_state()
    if args.wall_clock:
        kept = "kept" if rundir.has_state() else "new"
        return "", f"run in {rundir.path} on the wall clock (real time; database {kept})"
    start = args.start or DEFAULT_START
    if not rundir.has_state():
        return start, f"fresh run in {rundir.path}: simulated clock from {start}"
    last = rundir.last_time()
    if last is None:
        return (
            start,
            f"resuming the run in {rundir.path} (its clock is unknown): simulated clock from {start}",
        )
    if args.start and parse_time(args.start) < last:
        raise StartRefused(
            f"{rundir.path} holds a run up to {last:%Y-%m-%dT%H:%M:%SZ}; --start {args.start} would turn its "
            "clock back: add --fresh to start over"
        )
    resumed = max(last, parse_time(args.start)) if args.start else last
    stamp = f"{resumed:%Y-%m-%dT%H:%M:%SZ}"
    return (
        stamp,
        f"resuming the run in {rundir.path}: simulated clock continues from {stamp} (--fresh starts over)",
    )


def _hub_auth(args: argparse.Namespace, rundir: RunDirectory) -> HubAuth | None:
    if args.auth:
        return make_tokens(rundir.path)
    tokens_file = os.environ.get("CASPIAN_HUB_AUTH_TOKENS_FILE", "")
    if tokens_file:
        return admin_token_from(tokens_file, os.environ.get("CASPIAN_RUN_ADMIN_TOKEN_FILE", ""))
    return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console()
    speedup = args.speedup or (DEMO_SPEEDUP if args.demo else 720.0)
    rundir = RunDirectory(pathlib.Path(args.workdir) if args.workdir else default_workdir(args.demo))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stack: Stack | None = None
    try:
        # Every refusal comes before anything in the run directory is written.
        rundir.lock()
        env = _scheduler_env(speedup)
        auth = _hub_auth(args, rundir)
        if auth is not None:
            env["hub"]["CASPIAN_HUB_AUTH_TOKENS_FILE"] = auth.tokens_file
        config = StackConfig(
            workdir=rundir.path,
            fixed_ports=not (args.ephemeral_ports or args.demo),
            clock_speedup=speedup,
            clock_mode="wall" if args.wall_clock else "sim",
            env=env,
            log_dir=rundir.log_dir,
            hub_token=auth.admin_token if auth else "",
            console=True,  # the demo too: its URL is printed, and its pages show the demo while it runs
        )
        busy = busy_ports(Stack(config).fixed_ports())
        if busy:
            raise StartRefused(
                f"ports in use ({', '.join(busy)}): another CASPIAN or program holds them; "
                "stop it, or add --ephemeral-ports"
            )
        start, how = _clock_start(args, rundir)
        config.clock_start = start or config.clock_start
        pace = "" if args.wall_clock else f", {speedup:g}x"
        console.print(f"starting CASPIAN: {how}{pace}", soft_wrap=True)
        starting = Stack(config)
        with rundir.undo_on_failure():
            starting.start()  # stops what it started when a service fails
        stack = starting
        _print_addresses(console, stack, rundir, auth)
        if args.demo:
            from services.launcher.demo import run_demo

            return run_demo(
                stack.hub_address,
                console,
                carbon_address=stack.services["carbon"].address,
                metadata=stack.hub_metadata(),
            )
        console.print("all services up; Ctrl-C stops them")
        _follow(stack, rundir, stop, live=console.is_terminal and not args.no_view, console=console)
        return 0
    except StartRefused as exc:
        print(f"caspian: {exc}", file=sys.stderr)
        return 1
    except (StartupFailed, TimeoutError) as exc:
        print(f"caspian: {getattr(exc, 'summary', exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        if stack is not None:
            rundir.save_clock(stack.sim_now())
            stack.stop()
            console.print("stopped")
        rundir.unlock()


def _print_addresses(console: Console, stack: Stack, rundir: RunDirectory, auth: HubAuth | None) -> None:
    for proc in stack.all_processes():
        label = proc.args[1] if proc.args else proc.module.rsplit(".", 1)[-1]
        console.print(f"  {label:<11} {proc.address:<22} metrics {proc.metrics_address}", soft_wrap=True)
    console.print(f"  kubeconfig  {stack.kubeconfig}", soft_wrap=True)
    console.print(f"  logs        {rundir.log_dir}/<service>.log", soft_wrap=True)
    if stack.console_url:
        console.print(f"  web console {stack.console_url}", soft_wrap=True)
    if auth is not None and auth.admin_token_file:
        console.print(
            f"  hub tokens  on: caspianctl --token-file {auth.admin_token_file} (admin) or "
            f"{auth.demo_token_file} (tenant demo)",
            soft_wrap=True,
        )
    elif auth is not None:
        console.print(f"  hub tokens  on ({auth.tokens_file})", soft_wrap=True)


def _follow(stack: Stack, rundir: RunDirectory, stop: threading.Event, live: bool, console: Console) -> None:
    """Until Ctrl-C or SIGTERM: the live view on a terminal, else one line per scheduling cycle."""
    from rich.live import Live

    from services.launcher.view import StackClient, cycle_line, render

    client = StackClient(stack.hub_address, stack.services["carbon"].address, metadata=stack.hub_metadata())
    last_cycle = -1
    saved = 0.0
    try:
        with Live(console=console, refresh_per_second=2) if live else _NoLive() as view:
            while True:
                if time.monotonic() - saved >= SAVE_CLOCK_EVERY:
                    rundir.save_clock(stack.sim_now())
                    saved = time.monotonic()
                snapshot = client.snapshot()
                if live:
                    view.update(render(snapshot))
                elif snapshot is not None and snapshot.stats.last_cycle.cycle != last_cycle:
                    last_cycle = snapshot.stats.last_cycle.cycle
                    console.print(cycle_line(snapshot.stats), soft_wrap=True)
                if stop.wait(1.0):
                    return
    finally:
        client.close()


class _NoLive:
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None


if __name__ == "__main__":
    raise SystemExit(main())
