"""`caspianctl watch`: AppWrapper changes as they happen, resumed after the last revision when the stream
breaks. `_watch_events` also serves `submit --wait`."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import grpc

from caspian.v1 import hub_pb2
from caspianctl import render
from caspianctl.context import Ctl
from caspianctl.output import data_of

# Statuses after which a watch reconnects and resumes from the last revision it saw.
RESUMABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN})


def watch_events(
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


def cmd_watch(ctl: Ctl) -> int:
    args, out = ctl.args, ctl.out
    request = hub_pb2.WatchAppWrappersRequest(
        since_revision=args.since, phases=args.phase or [], tenant=args.tenant or ""
    )
    shown = 0
    if out.is_table:
        out.line(render.WATCH_HEADER)
    for event in watch_events(ctl, request):
        if event.type == hub_pb2.WATCH_EVENT_TYPE_BOOKMARK:
            if args.no_follow:
                return 0
            if out.is_table:
                out.footer(f"-- replay done at revision {event.revision}; now live --")
            continue
        if out.is_table:
            out.line(render.watch_line(event))
        elif out.format == "name":
            out.line(f"appwrapper/{event.app_wrapper.id}")
        elif out.format == "json":
            out.line(json.dumps(data_of(event)))
        else:
            out.line("---")
            out.data(data_of(event))
        shown += 1
        if args.count and shown >= args.count:
            return 0
    return 0
