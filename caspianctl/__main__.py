"""caspianctl: submit, inspect, watch and cancel AppWrappers, and manage spoke clusters, on a CASPIAN hub.

Exit status: 0 on success, 1 when some items of a bulk request were refused or a waited-for job did not
succeed, 2 for bad command-line arguments or job files, 130 on Ctrl-C, and 64 + the gRPC status code
when the hub refuses a call (69 NOT_FOUND, 67 INVALID_ARGUMENT, 78 UNAVAILABLE), as grpcurl does.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import IO

import grpc
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from caspian.v1 import common_pb2, hub_pb2
from caspianctl import render
from caspianctl.client import DEFAULT_HUB, Connection, HubClient
from caspianctl.render import Output
from caspianctl.specs import (
    SpecError,
    appwrapper_from_document,
    cluster_from_document,
    load_documents,
    needs_now,
)
from services.common.channels import ClientTLS
from services.common.timeconv import from_timestamp

EXIT_PARTIAL = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
GRPC_EXIT_BASE = 64
# A bulk submission lists the ids it got up to this size; -o json always has them all.
SHOW_IDS_UP_TO = 50
# Statuses after which a watch reconnects and resumes from the last revision it saw.
RESUMABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN})


class Ctl:
    """What every command gets: the hub client, the output and the parsed arguments."""

    def __init__(self, args: argparse.Namespace, output: Output):
        self.args = args
        self.out = output
        tls = ClientTLS(args.tls_ca or "", args.tls_cert or "", args.tls_key or "")
        self.connection = Connection(
            args.hub, args.timeout, args.token or "", tls, args.tls_server_name or ""
        )
        self._client: HubClient | None = None

    @property
    def hub(self) -> HubClient:
        if self._client is None:
            self._client = HubClient(self.connection)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def hub_now(self) -> datetime:
        """The hub's clock, so offsets like "6h" mean the same under a simulated clock."""
        try:
            stats = self.hub.call("GetStats", hub_pb2.GetStatsRequest())
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise
            stats = hub_pb2.GetStatsResponse()
        if stats.HasField("now"):
            return from_timestamp(stats.now)
        self.out.note("the hub did not report its clock; offsets count from this machine's clock")
        return datetime.now(UTC)


# ---------------------------------------------------------------------------------------------- submit


def _load_appwrappers(ctl: Ctl, files: Sequence[str]) -> tuple[list, list[common_pb2.AppWrapper]]:
    docs = [doc for path in files for doc in load_documents(path)]
    now = ctl.hub_now() if needs_now(docs) else datetime.now(UTC)
    return docs, [appwrapper_from_document(doc, now) for doc in docs]


def _request_ids(prefix: str | None, count: int) -> list[str]:
    if prefix and count == 1:
        return [prefix]
    if prefix:
        return [f"{prefix}-{i}" for i in range(count)]
    return [uuid.uuid4().hex for _ in range(count)]


def _progress(out: Output, label: str) -> Progress:
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=out.errors,
        transient=True,
        disable=not out.errors.is_terminal,
    )


def cmd_submit(ctl: Ctl) -> int:
    args, out = ctl.args, ctl.out
    docs, app_wrappers = _load_appwrappers(ctl, args.files)
    if args.dry_run:
        if out.is_table:
            out.table(
                render.appwrapper_table(app_wrappers, title=f"{len(app_wrappers)} AppWrapper(s), not sent")
            )
        else:
            out.data([render.to_dict(aw) for aw in app_wrappers])
        return 0
    ids = _request_ids(args.request_id, len(app_wrappers))
    if len(app_wrappers) == 1:
        request = hub_pb2.SubmitAppWrapperRequest(app_wrapper=app_wrappers[0], request_id=ids[0])
        response = ctl.hub.call("SubmitAppWrapper", request)
        if out.is_table:
            verb = "created" if response.created else "already submitted"
            out.line(
                f"{response.app_wrapper.id} {verb} ({render.phase_name(response.app_wrapper.status.phase)})"
            )
        else:
            out.message(response)
        submitted = [response.app_wrapper.id]
        status = 0
    else:
        submitted, status = _submit_many(ctl, docs, app_wrappers, ids)
    if args.wait and submitted:
        return max(status, _wait(ctl, submitted))
    return status


def _submit_many(ctl: Ctl, docs, app_wrappers, ids) -> tuple[list[str], int]:
    out, batch = ctl.out, ctl.args.batch_size
    with _progress(out, "submitting") as progress:
        task = progress.add_task("submit", total=len(app_wrappers))

        def batches() -> Iterator[hub_pb2.SubmitAppWrappersRequest]:
            for start in range(0, len(app_wrappers), batch):
                chunk = range(start, min(start + batch, len(app_wrappers)))
                yield hub_pb2.SubmitAppWrappersRequest(
                    items=[
                        hub_pb2.SubmitAppWrapperRequest(app_wrapper=app_wrappers[i], request_id=ids[i])
                        for i in chunk
                    ]
                )
                progress.advance(task, len(chunk))

        response = ctl.hub.call("SubmitAppWrappers", batches())
    refused = [r for r in response.results if r.error_code]
    if out.is_table:
        out.line(f"submitted {len(app_wrappers)}: accepted {response.accepted}, rejected {response.rejected}")
        if len(app_wrappers) <= SHOW_IDS_UP_TO:
            for result in response.results:
                if not result.error_code and 0 <= result.index < len(docs):
                    verb = "created" if result.created else "already submitted"
                    out.line(f"  {result.id} {verb}: {docs[result.index].where()}")
        if refused:
            table = Table(title="refused", title_justify="left")
            for column in ("ITEM", "CODE", "MESSAGE"):
                table.add_column(column)
            for result in refused:
                where = docs[result.index].where() if 0 <= result.index < len(docs) else str(result.index)
                table.add_row(where, result.error_code, result.error_message)
            out.table(table)
    else:
        out.message(response)
    accepted = [r.id for r in response.results if not r.error_code and r.id]
    return accepted, EXIT_PARTIAL if response.rejected or refused else 0


def _wait(ctl: Ctl, ids: Sequence[str]) -> int:
    """Follow the hub until every given AppWrapper is in a final phase; 1 if any did not succeed."""
    wanted, final = set(ids), {}
    deadline = time.monotonic() + ctl.args.wait_timeout if ctl.args.wait_timeout else None
    with _progress(ctl.out, "finished") as progress:
        task = progress.add_task("wait", total=len(wanted))
        for event in _watch_events(ctl, hub_pb2.WatchAppWrappersRequest(), deadline):
            aw = event.app_wrapper
            if aw.id in wanted and aw.status.phase in render.TERMINAL_PHASES and aw.id not in final:
                final[aw.id] = aw
                progress.update(task, completed=len(final))
                if len(final) == len(wanted):
                    break
    if len(final) < len(wanted):
        ctl.out.error(f"gave up waiting: {len(wanted) - len(final)} of {len(wanted)} not finished")
        return EXIT_PARTIAL
    done = [final[i] for i in ids]
    if ctl.out.is_table:
        ctl.out.table(render.appwrapper_table(done, title="finished"))
    else:
        ctl.out.data([render.to_dict(aw) for aw in done])
    ok = all(aw.status.phase == common_pb2.APP_WRAPPER_PHASE_SUCCEEDED for aw in done)
    return 0 if ok else EXIT_PARTIAL


# ------------------------------------------------------------------------------------------- get, list


def cmd_get(ctl: Ctl) -> int:
    response = ctl.hub.call("GetAppWrapper", hub_pb2.GetAppWrapperRequest(id=ctl.args.id))
    if ctl.out.is_table:
        ctl.out.table(render.appwrapper_detail(response.app_wrapper))
    else:
        ctl.out.message(response.app_wrapper)
    return 0


def cmd_list(ctl: Ctl) -> int:
    args, out = ctl.args, ctl.out
    request = hub_pb2.ListAppWrappersRequest(
        phases=args.phase or [],
        cluster=args.cluster or "",
        tenant=args.tenant or "",
        page_size=args.page_size,
        page_token=args.page_token or "",
    )
    app_wrappers: list[common_pb2.AppWrapper] = []
    seen_tokens: set[str] = set()
    while True:
        response = ctl.hub.call("ListAppWrappers", request)
        app_wrappers.extend(response.app_wrappers)
        token = response.next_page_token
        if not args.all or not token or token in seen_tokens:
            break
        seen_tokens.add(token)
        request.page_token = token
    if out.is_table:
        out.table(render.appwrapper_table(app_wrappers))
        shown = (
            f"{len(app_wrappers)} of {response.total_size}" if response.total_size else str(len(app_wrappers))
        )
        out.note(f"{shown} AppWrapper(s)")
        if token and not args.all:
            out.note(f"more: --page-token {token}   (or --all)")
    else:
        out.data(
            {
                "app_wrappers": [render.to_dict(aw) for aw in app_wrappers],
                "next_page_token": "" if args.all else token,
                "total_size": response.total_size,
            }
        )
    return 0


# ----------------------------------------------------------------------------------------------- watch


def _watch_events(
    ctl: Ctl, original: hub_pb2.WatchAppWrappersRequest, deadline: float | None = None
) -> Iterator[hub_pb2.WatchAppWrappersResponse]:
    """Events from WatchAppWrappers; when the stream breaks it reconnects and resumes after the last
    revision seen, giving up after --retries failed attempts in a row."""
    failures = 0
    request = hub_pb2.WatchAppWrappersRequest()
    request.CopyFrom(original)
    while True:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return
        call = ctl.hub.stream("WatchAppWrappers", request, timeout=remaining)
        try:
            for event in call:
                failures = 0
                request.since_revision = max(request.since_revision, event.revision)
                yield event
            reason = "the hub ended the stream"
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED and deadline is not None:
                return
            if exc.code() not in RESUMABLE or failures >= ctl.args.retries:
                raise
            reason = f"{exc.code().name}: {' '.join((exc.details() or '').split())}"
        finally:
            call.cancel()
        if failures >= ctl.args.retries:
            return
        failures += 1
        ctl.out.note(f"watch interrupted ({reason}); resuming after revision {request.since_revision}")
        time.sleep(min(ctl.args.retry_backoff * 2 ** (failures - 1), 10.0))


def _watch_request(ctl: Ctl) -> hub_pb2.WatchAppWrappersRequest:
    args = ctl.args
    return hub_pb2.WatchAppWrappersRequest(
        since_revision=args.since, phases=args.phase or [], tenant=args.tenant or ""
    )


def cmd_watch(ctl: Ctl) -> int:
    args, out = ctl.args, ctl.out
    shown = 0
    if out.is_table:
        out.line(render.WATCH_HEADER)
    for event in _watch_events(ctl, _watch_request(ctl)):
        if event.type == hub_pb2.WATCH_EVENT_TYPE_BOOKMARK:
            if args.no_follow:
                return 0
            if out.is_table:
                out.note(f"-- replay done at revision {event.revision}; now live --")
            continue
        if out.is_table:
            out.line(render.watch_line(event))
        elif out.format == "json":
            out.line(json.dumps(render.to_dict(event)))
        else:
            out.line("---")
            out.message(event)
        shown += 1
        if args.count and shown >= args.count:
            return 0
    return 0


# ------------------------------------------------------------------------------------ cancel, preview


def cmd_cancel(ctl: Ctl) -> int:
    responses = []
    for app_wrapper_id in ctl.args.ids:
        request = hub_pb2.CancelAppWrapperRequest(id=app_wrapper_id, reason=ctl.args.reason or "")
        response = ctl.hub.call("CancelAppWrapper", request)
        responses.append(response.app_wrapper)
        if ctl.out.is_table:
            ctl.out.line(f"{app_wrapper_id} {render.phase_name(response.app_wrapper.status.phase).lower()}")
    if not ctl.out.is_table:
        ctl.out.data([render.to_dict(aw) for aw in responses])
    return 0


def cmd_preview(ctl: Ctl) -> int:
    _, app_wrappers = _load_appwrappers(ctl, [ctl.args.file])
    if len(app_wrappers) != 1:
        raise SpecError(f"{ctl.args.file}: preview takes one AppWrapper, the file has {len(app_wrappers)}")
    response = ctl.hub.call("PreviewSchedule", hub_pb2.PreviewScheduleRequest(app_wrapper=app_wrappers[0]))
    if ctl.out.is_table:
        ctl.out.table(render.preview_table(response))
    else:
        ctl.out.message(response)
    return 0


def cmd_stats(ctl: Ctl) -> int:
    response = ctl.hub.call("GetStats", hub_pb2.GetStatsRequest())
    if ctl.out.is_table:
        ctl.out.table(render.stats_table(response))
    else:
        ctl.out.message(response)
    return 0


# -------------------------------------------------------------------------------------------- clusters


def cmd_clusters_list(ctl: Ctl) -> int:
    response = ctl.hub.call("ListClusters", hub_pb2.ListClustersRequest())
    if ctl.out.is_table:
        ctl.out.table(render.cluster_table(response.clusters))
    else:
        ctl.out.message(response)
    return 0


def cmd_clusters_register(ctl: Ctl) -> int:
    docs = [doc for path in ctl.args.files for doc in load_documents(path, ("items", "clusters"))]
    clusters = [cluster_from_document(doc) for doc in docs]
    registered = []
    for cluster in clusters:
        try:
            response = ctl.hub.call("RegisterCluster", hub_pb2.RegisterClusterRequest(cluster=cluster))
            verb = "registered"
        except grpc.RpcError as exc:
            if not (ctl.args.upsert and exc.code() == grpc.StatusCode.ALREADY_EXISTS):
                raise
            response = ctl.hub.call("UpdateCluster", hub_pb2.UpdateClusterRequest(cluster=cluster))
            verb = "updated"
        registered.append(response.cluster)
        if ctl.out.is_table:
            ctl.out.line(f"{response.cluster.name} {verb} (zone {response.cluster.zone or '-'})")
    if not ctl.out.is_table:
        ctl.out.data([render.to_dict(c) for c in registered])
    return 0


def cmd_clusters_deregister(ctl: Ctl) -> int:
    for name in ctl.args.names:
        ctl.hub.call("DeregisterCluster", hub_pb2.DeregisterClusterRequest(name=name))
        if ctl.out.is_table:
            ctl.out.line(f"{name} deregistered")
    return 0


# ---------------------------------------------------------------------------------------------- parser


def _phase(text: str) -> list[int]:
    try:
        return [render.phase_from_text(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above zero, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above zero, got {text!r}")
    return value


class _Extend(argparse.Action):
    """--phase pending --phase running,failed -> one flat list."""

    def __call__(self, parser, namespace, values, option_string=None):
        items = list(getattr(namespace, self.dest) or [])
        items.extend(values)
        setattr(namespace, self.dest, items)


def build_parser(env: dict[str, str] | None = None) -> argparse.ArgumentParser:
    env = dict(os.environ) if env is None else env
    parser = argparse.ArgumentParser(
        prog="caspianctl",
        description="Command-line client for the CASPIAN hub.",
        epilog="Exit status: 0 ok, 1 partly refused, 2 bad usage or file, 64+code when the hub refuses.",
    )
    parser.add_argument(
        "--hub",
        default=env.get("CASPIAN_HUB_ADDRESS", DEFAULT_HUB),
        help="hub address host:port (env CASPIAN_HUB_ADDRESS; default %(default)s)",
    )
    parser.add_argument("--timeout", type=_positive_float, default=10.0, help="seconds per call (default 10)")
    parser.add_argument("-o", "--output", choices=render.FORMATS, default="table", help="output format")
    parser.add_argument(
        "--token",
        default=env.get("CASPIAN_TOKEN", ""),
        help="bearer token sent as 'authorization: Bearer <token>' (env CASPIAN_TOKEN)",
    )
    parser.add_argument(
        "--tls-ca",
        default=env.get("CASPIAN_TLS_CA_FILE", ""),
        help="PEM CA bundle for the hub's certificate; turns TLS on (env CASPIAN_TLS_CA_FILE)",
    )
    parser.add_argument(
        "--tls-cert",
        default=env.get("CASPIAN_TLS_CERT_FILE", ""),
        help="PEM client certificate for mTLS (env CASPIAN_TLS_CERT_FILE)",
    )
    parser.add_argument(
        "--tls-key",
        default=env.get("CASPIAN_TLS_KEY_FILE", ""),
        help="PEM key of the client certificate (env CASPIAN_TLS_KEY_FILE)",
    )
    parser.add_argument("--tls-server-name", default="", help="name to verify in the hub's certificate")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    submit = commands.add_parser("submit", help="submit AppWrappers from YAML or JSON files")
    submit.add_argument("files", nargs="+", metavar="FILE", help="job files; - reads standard input")
    submit.add_argument("--dry-run", action="store_true", help="show what would be sent, send nothing")
    submit.add_argument("--request-id", help="idempotency key (item i of many gets KEY-i); default random")
    submit.add_argument(
        "--batch-size", type=_positive_int, default=500, help="AppWrappers per stream message"
    )
    submit.add_argument("--wait", action="store_true", help="wait until every submitted job has finished")
    submit.add_argument("--wait-timeout", type=_positive_float, help="seconds to wait at most with --wait")
    _add_watch_retry(submit)
    submit.set_defaults(run=cmd_submit)

    get = commands.add_parser("get", help="show one AppWrapper")
    get.add_argument("id")
    get.set_defaults(run=cmd_get)

    listing = commands.add_parser("list", help="list AppWrappers")
    listing.add_argument("--phase", type=_phase, action=_Extend, help="phase filter, e.g. pending,running")
    listing.add_argument("--cluster", help="only those placed on this cluster")
    listing.add_argument("--tenant", help="only this tenant's")
    listing.add_argument("--page-size", type=_positive_int, default=100)
    listing.add_argument("--page-token", help="continue from a previous page")
    listing.add_argument("--all", action="store_true", help="follow every page")
    listing.set_defaults(run=cmd_list)

    watch = commands.add_parser("watch", help="stream AppWrapper changes")
    watch.add_argument(
        "--since", type=int, default=0, help="resume after this revision (0: current state first)"
    )
    watch.add_argument("--phase", type=_phase, action=_Extend, help="phase filter")
    watch.add_argument("--tenant", help="only this tenant's")
    watch.add_argument("--count", type=_positive_int, help="stop after this many events")
    watch.add_argument("--no-follow", action="store_true", help="stop when the initial replay is done")
    _add_watch_retry(watch)
    watch.set_defaults(run=cmd_watch)

    cancel = commands.add_parser("cancel", help="cancel AppWrappers")
    cancel.add_argument("ids", nargs="+", metavar="ID")
    cancel.add_argument("--reason", help="recorded with the cancellation")
    cancel.set_defaults(run=cmd_cancel)

    clusters = commands.add_parser("clusters", help="list, register or deregister spoke clusters")
    clusters.set_defaults(run=cmd_clusters_list)
    actions = clusters.add_subparsers(dest="action", metavar="ACTION")
    actions.add_parser("list", help="list clusters (the default)").set_defaults(run=cmd_clusters_list)
    register = actions.add_parser("register", help="register clusters from YAML or JSON files")
    register.add_argument("files", nargs="+", metavar="FILE")
    register.add_argument("--upsert", action="store_true", help="update clusters that already exist")
    register.set_defaults(run=cmd_clusters_register)
    deregister = actions.add_parser("deregister", help="remove clusters")
    deregister.add_argument("names", nargs="+", metavar="NAME")
    deregister.set_defaults(run=cmd_clusters_deregister)

    commands.add_parser("stats", help="counts, carbon emitted and avoided, last cycle").set_defaults(
        run=cmd_stats
    )

    preview = commands.add_parser("preview", help="where and when one AppWrapper would run, and the saving")
    preview.add_argument("file", metavar="FILE")
    preview.set_defaults(run=cmd_preview)
    return parser


def _add_watch_retry(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--retries", type=int, default=5, help="reconnects in a row before a watch gives up")
    parser.add_argument("--retry-backoff", type=_positive_float, default=0.5, help="first reconnect delay, s")


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
            args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    out = Output(args.output, stdout, stderr)
    ctl = Ctl(args, out)
    run: Callable[[Ctl], int] = args.run
    interrupted = threading.Event()
    previous = _on_interrupt(interrupted.set)
    try:
        return run(ctl)
    except SpecError as exc:
        out.error(str(exc))
        return EXIT_USAGE
    except grpc.RpcError as exc:
        if interrupted.is_set():
            # Ctrl-C during a call: gRPC cancels it and reports CANCELLED; that is not an error.
            return EXIT_INTERRUPTED
        out.error(_rpc_error_text(exc, ctl.connection.address))
        return GRPC_EXIT_BASE + exc.code().value[0]
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
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


def _rpc_error_text(exc: grpc.RpcError, address: str) -> str:
    code: grpc.StatusCode = exc.code()
    details = " ".join((exc.details() or "").split())
    if code == grpc.StatusCode.UNAVAILABLE:
        return f"UNAVAILABLE: cannot reach the hub at {address}: {details}"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"DEADLINE_EXCEEDED: the hub at {address} did not answer in time (--timeout)"
    return f"{code.name}: {details}"


if __name__ == "__main__":
    sys.exit(main())
