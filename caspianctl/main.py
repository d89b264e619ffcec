# PYTHON_ARGCOMPLETE_OK
"""caspianctl: submit, inspect, watch and cancel AppWrappers, and manage spoke clusters, on a CASPIAN hub.

Exit status: 0 on success, 1 when some items of a bulk request were refused or a waited-for job did not
succeed, 2 for bad command-line arguments or job files, 130 on Ctrl-C, and 64 + the gRPC status code
when the hub refuses a call (69 NOT_FOUND, 67 INVALID_ARGUMENT, 78 UNAVAILABLE), as grpcurl does. Nothing
ends in a traceback: an unexpected failure is one line and exit 3.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import IO

import grpc

from caspianctl.context import EXIT_INTERRUPTED, EXIT_USAGE, GRPC_EXIT_BASE, Ctl
from caspianctl.output import Output
from caspianctl.parser import build_parser
from caspianctl.specs import SpecError

# Not 70 (EX_SOFTWARE): 64 + 6 is ALREADY_EXISTS.
EXIT_SOFTWARE = 3


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
    env: dict[str, str] | None = None,
) -> int:
    parser = build_parser(env)
    try:
        # argparse writes usage and --help to the process streams; send them where the caller asked.
        with (
            contextlib.redirect_stdout(stdout or sys.stdout),
            contextlib.redirect_stderr(stderr or sys.stderr),
        ):
            if argv is None:
                import argcomplete

                argcomplete.autocomplete(parser)  # answers and exits only under shell completion
            args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    out = Output(args.output, stdout, stderr)
    try:
        if args.token_file and not args.token:
            with open(args.token_file, encoding="utf-8") as fh:
                args.token = fh.read().strip()
    except OSError as exc:
        out.error(f"cannot read --token-file {args.token_file}: {exc.strerror}")
        return EXIT_USAGE
    ctl = Ctl(args, out)
    run: Callable[[Ctl], int] = args.run
    interrupted = threading.Event()
    previous = _on_interrupt(interrupted.set)
    try:
        return run(ctl)
    except SpecError as exc:
        for line in str(exc).splitlines():
            out.error(line)
        return EXIT_USAGE
    except grpc.RpcError as exc:
        if interrupted.is_set():
            # Ctrl-C during a call: gRPC cancels it and reports CANCELLED; that is not an error.
            return EXIT_INTERRUPTED
        out.error(rpc_error_text(exc, ctl.connection.address))
        return GRPC_EXIT_BASE + exc.code().value[0]
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0  # `caspianctl list | head`: the reader has what it wanted
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback
        out.error(f"unexpected {type(exc).__name__}: {' '.join(str(exc).split())}")
        return EXIT_SOFTWARE
    finally:
        ctl.close()
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _on_interrupt(note: Callable[[], None]):
    """Record SIGINT, then interrupt as usual; returns the handler to restore (None off the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        note()
        raise KeyboardInterrupt

    return signal.signal(signal.SIGINT, handler)


def rpc_error_text(exc: grpc.RpcError, address: str) -> str:
    code: grpc.StatusCode = exc.code()
    details = " ".join((exc.details() or "").split())
    if code == grpc.StatusCode.UNAVAILABLE:
        return f"UNAVAILABLE: cannot reach the hub at {address}: {details}"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"DEADLINE_EXCEEDED: the hub at {address} did not answer in time (--timeout)"
    file_key = getattr(exc, "file_key", "")
    return f"{code.name}: {details}" + (f" ({file_key})" if file_key else "")
