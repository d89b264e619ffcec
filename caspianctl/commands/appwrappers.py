"""`get`, `list` and `cancel` (alias `delete`) of AppWrappers."""

from __future__ import annotations

from caspian.v1 import common_pb2, hub_pb2
from caspianctl import render
from caspianctl.context import Ctl
from caspianctl.output import data_of
from caspianctl.selectors import matches


def names(app_wrappers) -> list[str]:
    return [f"appwrapper/{aw.id}" for aw in app_wrappers]


def cmd_get(ctl: Ctl) -> int:
    found = [
        ctl.hub.call("GetAppWrapper", hub_pb2.GetAppWrapperRequest(id=i)).app_wrapper for i in ctl.args.ids
    ]
    if len(found) == 1 and not ctl.out.wide:
        ctl.out.show(found[0], lambda wide: render.appwrapper_detail(found[0]), names(found))
    else:
        data = data_of(found[0]) if len(found) == 1 else [data_of(aw) for aw in found]
        ctl.out.show(data, lambda wide: render.appwrapper_table(found, wide=wide), names(found))
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
    # The hub has no label filter: with -l every page is read and filtered here.
    follow = args.all or bool(args.selector)
    app_wrappers: list[common_pb2.AppWrapper] = []
    seen_tokens: set[str] = set()
    while True:
        response = ctl.hub.call("ListAppWrappers", request)
        app_wrappers.extend(aw for aw in response.app_wrappers if matches(args.selector, aw.labels))
        token = response.next_page_token
        if not follow or not token or token in seen_tokens:
            break
        seen_tokens.add(token)
        request.page_token = token
    data = {
        "app_wrappers": [data_of(aw) for aw in app_wrappers],
        "next_page_token": "" if follow else token,
        "total_size": len(app_wrappers) if args.selector else response.total_size,
    }
    out.show(data, lambda wide: render.appwrapper_table(app_wrappers, wide=wide), names(app_wrappers))
    if response.total_size and not args.selector:
        out.footer(f"{len(app_wrappers)} of {response.total_size} AppWrapper(s)")
    else:
        out.footer(f"{len(app_wrappers)} AppWrapper(s)")
    if token and not follow:
        out.footer(f"more: --page-token {token}   (or --all)")
    return 0


def cmd_cancel(ctl: Ctl) -> int:
    cancelled = []
    for app_wrapper_id in ctl.args.ids:
        request = hub_pb2.CancelAppWrapperRequest(id=app_wrapper_id, reason=ctl.args.reason or "")
        aw = ctl.hub.call("CancelAppWrapper", request).app_wrapper
        cancelled.append(aw)
        if ctl.out.is_table:
            ctl.out.line(f"{app_wrapper_id} {render.phase_name(aw.status.phase).lower()}")
    if not ctl.out.is_table:
        ctl.out.show([data_of(aw) for aw in cancelled], names=names(cancelled))
    return 0
