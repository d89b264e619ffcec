"""`make run`: start every CASPIAN service as a local process, print the addresses, stop all on Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal
import threading

from services.launcher.procs import ServiceProcess

# Start order: dependencies first.
SERVICES = ("carbon", "optimizer", "dispatcher", "hub")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="caspian-run", description=__doc__)
    parser.add_argument("--demo", action="store_true", help="run the demo workload and exit")
    parser.parse_args(argv)
    procs: list[ServiceProcess] = []
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        for name in SERVICES:
            proc = ServiceProcess(f"services.{name}", env=dict(os.environ)).start()
            procs.append(proc)
            print(f"{name:<11} grpc {proc.address:<22} metrics {proc.metrics_address}", flush=True)
        print("all services up; Ctrl-C stops them", flush=True)
        while not stop.wait(0.5):
            for proc in procs:
                if proc.proc is not None and proc.proc.poll() is not None:
                    print(f"{proc.module} exited with {proc.proc.returncode}; stopping", flush=True)
                    stop.set()
    finally:
        for proc in reversed(procs):
            proc.terminate()
        print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
