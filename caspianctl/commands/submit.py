"""`caspianctl submit`: AppWrappers from job files, one call or a client stream for many, and `--wait`."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import grpc
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from caspian.v1 import common_pb2, hub_pb2
from caspianctl import render
from caspianctl.commands.watch import watch_events
from caspianctl.context import EXIT_PARTIAL, Ctl
from caspianctl.output import Output, data_of
from caspianctl.specs import appwrapper_from_document, file_key_for, load_documents, needs_now

# A bulk submission lists the ids it got up to this size; -o json always has them all.
SHOW_IDS_UP_TO = 50


def load_appwrappers(ctl: Ctl, files: Sequence[str]) -> tuple[list, list[common_pb2.AppWrapper]]:
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


def _names(ids: Sequence[str]) -> list[str]:
    return [f"appwrapper/{i}" for i in ids]


def cmd_submit(ctl: Ctl) -> int:
    args, out = ctl.args, ctl.out
    docs, app_wrappers = load_appwrappers(ctl, args.files)
    if args.dry_run:
        title = f"{len(app_wrappers)} AppWrapper(s), not sent"
        out.show(
            [data_of(aw) for aw in app_wrappers],
            lambda wide: render.appwrapper_table(app_wrappers, title=title, wide=wide),
            _names([aw.id or aw.name for aw in app_wrappers]),
        )
        return 0
    ids = _request_ids(args.request_id, len(app_wrappers))
    if len(app_wrappers) == 1:
        request = hub_pb2.SubmitAppWrapperRequest(app_wrapper=app_wrappers[0], request_id=ids[0])
        try:
            response = ctl.hub.call("SubmitAppWrapper", request)
        except grpc.RpcError as exc:
            # main() prints it; the hub names the proto field, the user wrote the file's key.
            exc.file_key = file_key_for(exc.details() or "", docs[0])  # type: ignore[attr-defined]
            raise
        verb = "created" if response.created else "already submitted"
        out.show(
            response,
            lambda wide: (
                f"{response.app_wrapper.id} {verb} ({render.phase_name(response.app_wrapper.status.phase)})"
            ),
            _names([response.app_wrapper.id]),
        )
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
    accepted = [r.id for r in response.results if not r.error_code and r.id]
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
        out.show(response, names=_names(accepted))
    return accepted, EXIT_PARTIAL if response.rejected or refused else 0


def _wait(ctl: Ctl, ids: Sequence[str]) -> int:
    """Follow the hub until every given AppWrapper is in a final phase; 1 if any did not succeed."""
    wanted, final = set(ids), {}
    deadline = time.monotonic() + ctl.args.wait_timeout if ctl.args.wait_timeout else None
    with _progress(ctl.out, "finished") as progress:
        task = progress.add_task("wait", total=len(wanted))
        for event in watch_events(ctl, hub_pb2.WatchAppWrappersRequest(), deadline):
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
    ctl.out.show(
        [data_of(aw) for aw in done],
        lambda wide: render.appwrapper_table(done, title="finished", wide=wide),
        _names(ids),
    )
    ok = all(aw.status.phase == common_pb2.APP_WRAPPER_PHASE_SUCCEEDED for aw in done)
    return 0 if ok else EXIT_PARTIAL
