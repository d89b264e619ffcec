"""`stats`, `preview`, `version` and `completion`."""

from __future__ import annotations

import importlib.metadata

import grpc

from caspian.v1 import hub_pb2
from caspianctl import render
from caspianctl.commands.submit import load_appwrappers
from caspianctl.context import Ctl
from caspianctl.specs import SpecError


def cmd_stats(ctl: Ctl) -> int:
    response = ctl.hub.call("GetStats", hub_pb2.GetStatsRequest())
    ctl.out.show(response, lambda wide: render.stats_table(response), ["stats"])
    return 0


def cmd_preview(ctl: Ctl) -> int:
    _, app_wrappers = load_appwrappers(ctl, [ctl.args.file])
    if len(app_wrappers) != 1:
        raise SpecError(f"{ctl.args.file}: preview takes one AppWrapper, the file has {len(app_wrappers)}")
    response = ctl.hub.call("PreviewSchedule", hub_pb2.PreviewScheduleRequest(app_wrapper=app_wrappers[0]))
    ctl.out.show(response, lambda wide: render.preview_table(response), [f"cluster/{response.cluster}"])
    return 0


def client_version() -> str:
    try:
        return importlib.metadata.version("caspian")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def cmd_version(ctl: Ctl) -> int:
    """The client's version, and the hub's address and clock when it answers (as `kubectl version`)."""
    data: dict = {"client": client_version(), "hub": ctl.connection.address}
    try:
        stats = ctl.hub.call("GetStats", hub_pb2.GetStatsRequest())
        data["hub_time"] = render.when(stats, "now") if stats.HasField("now") else "not reported"
    except grpc.RpcError as exc:
        data["hub_error"] = exc.code().name
    lines = [
        f"caspianctl {data['client']}",
        f"hub {data['hub']}: " + data.get("hub_time", data.get("hub_error", "")),
    ]
    ctl.out.show(data, lambda wide: "\n".join(lines), [f"caspianctl/{data['client']}"])
    return 0


def cmd_completion(ctl: Ctl) -> int:
    """A shell completion script (argcomplete): `source <(caspianctl completion bash)`."""
    import argcomplete

    ctl.out.line(argcomplete.shellcode(["caspianctl"], shell=ctl.args.shell).rstrip("\n"))
    return 0
