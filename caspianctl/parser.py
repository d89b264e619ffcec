"""The command line: global options (accepted before or after the command, as kubectl accepts them), the
commands and their options."""

from __future__ import annotations

import argparse
import os

from caspianctl import render
from caspianctl.client import DEFAULT_HUB
from caspianctl.commands.appwrappers import cmd_cancel, cmd_get, cmd_list
from caspianctl.commands.clusters import cmd_clusters_deregister, cmd_clusters_list, cmd_clusters_register
from caspianctl.commands.info import client_version, cmd_completion, cmd_preview, cmd_stats, cmd_version
from caspianctl.commands.submit import cmd_submit
from caspianctl.commands.watch import cmd_watch
from caspianctl.output import FORMATS
from caspianctl.selectors import parse_selector

EPILOG = (
    "Exit status: 0 ok, 1 partly refused or not succeeded, 2 bad usage or file, 64+code when the hub refuses "
    "(69 NOT_FOUND, 67 INVALID_ARGUMENT, 78 UNAVAILABLE), 3 unexpected failure, 130 on Ctrl-C."
)


def _phase(text: str) -> list[int]:
    try:
        return [render.phase_from_text(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _selector(text: str):
    try:
        return parse_selector(text)
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


def _global_options(parser: argparse.ArgumentParser, env: dict[str, str], defaults: bool) -> None:
    """The options every command takes. On the commands they default to SUPPRESS, so that a value given
    before the command is kept unless repeated after it."""

    def default(value):
        return value if defaults else argparse.SUPPRESS

    parser.add_argument(
        "--hub",
        default=default(env.get("CASPIAN_HUB_ADDRESS", DEFAULT_HUB)),
        help=f"hub address host:port (env CASPIAN_HUB_ADDRESS; default {DEFAULT_HUB})",
    )
    parser.add_argument(
        "--timeout", type=_positive_float, default=default(10.0), help="seconds per call (default 10)"
    )
    parser.add_argument(
        "-o", "--output", choices=FORMATS, default=default("table"), help="output format (default table)"
    )
    parser.add_argument(
        "--token",
        default=default(env.get("CASPIAN_TOKEN", "")),
        help="bearer token sent as 'authorization: Bearer <token>' (env CASPIAN_TOKEN)",
    )
    parser.add_argument(
        "--token-file",
        default=default(env.get("CASPIAN_TOKEN_FILE", "")),
        help="file holding the bearer token (env CASPIAN_TOKEN_FILE); make run --auth writes var/run/admin-token",
    )
    parser.add_argument(
        "--tls-ca",
        default=default(env.get("CASPIAN_TLS_CA_FILE", "")),
        help="PEM CA bundle for the hub's certificate; turns TLS on (env CASPIAN_TLS_CA_FILE)",
    )
    parser.add_argument(
        "--tls-cert",
        default=default(env.get("CASPIAN_TLS_CERT_FILE", "")),
        help="PEM client certificate for mTLS (env CASPIAN_TLS_CERT_FILE)",
    )
    parser.add_argument(
        "--tls-key",
        default=default(env.get("CASPIAN_TLS_KEY_FILE", "")),
        help="PEM key of the client certificate (env CASPIAN_TLS_KEY_FILE)",
    )
    parser.add_argument(
        "--tls-server-name", default=default(""), help="name to verify in the hub's certificate"
    )


def _watch_retry(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--retries", type=int, default=5, help="reconnects in a row before a watch gives up")
    parser.add_argument("--retry-backoff", type=_positive_float, default=0.5, help="first reconnect delay, s")


def build_parser(env: dict[str, str] | None = None) -> argparse.ArgumentParser:
    env = dict(os.environ) if env is None else env
    parser = argparse.ArgumentParser(
        prog="caspianctl", description="Command-line client for the CASPIAN hub.", epilog=EPILOG
    )
    _global_options(parser, env, defaults=True)
    parser.add_argument("--version", action="version", version=f"caspianctl {client_version()}")
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, env, defaults=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, run, help_text: str, parent=commands, **kw) -> argparse.ArgumentParser:
        sub = parent.add_parser(name, help=help_text, description=help_text, parents=[common], **kw)
        sub.set_defaults(run=run)
        return sub

    submit = command("submit", cmd_submit, "submit AppWrappers from YAML or JSON files")
    submit.add_argument("files", nargs="+", metavar="FILE", help="job files; - reads standard input")
    submit.add_argument("--dry-run", action="store_true", help="show what would be sent, send nothing")
    submit.add_argument("--request-id", help="idempotency key (item i of many gets KEY-i); default random")
    submit.add_argument(
        "--batch-size", type=_positive_int, default=500, help="AppWrappers per stream message"
    )
    submit.add_argument("--wait", action="store_true", help="wait until every submitted job has finished")
    submit.add_argument("--wait-timeout", type=_positive_float, help="seconds to wait at most with --wait")
    _watch_retry(submit)

    get = command("get", cmd_get, "show AppWrappers by id")
    get.add_argument("ids", nargs="+", metavar="ID")

    listing = command("list", cmd_list, "list AppWrappers")
    listing.add_argument("--phase", type=_phase, action=_Extend, help="phase filter, e.g. pending,running")
    listing.add_argument(
        "-l",
        "--selector",
        type=_selector,
        help="label selector, e.g. team=vision,tier!=gold (filtered here over every page)",
    )
    listing.add_argument("--cluster", help="only those placed on this cluster")
    listing.add_argument("--tenant", help="only this tenant's")
    listing.add_argument("--page-size", type=_positive_int, default=100)
    listing.add_argument("--page-token", help="continue from a previous page")
    listing.add_argument("--all", action="store_true", help="follow every page")

    watch = command("watch", cmd_watch, "stream AppWrapper changes")
    watch.add_argument(
        "--since", type=int, default=0, help="resume after this revision (0: current state first)"
    )
    watch.add_argument("--phase", type=_phase, action=_Extend, help="phase filter")
    watch.add_argument("--tenant", help="only this tenant's")
    watch.add_argument("--count", type=_positive_int, help="stop after this many events")
    watch.add_argument("--no-follow", action="store_true", help="stop when the initial replay is done")
    _watch_retry(watch)

    cancel = command("cancel", cmd_cancel, "cancel AppWrappers (alias: delete)", aliases=["delete"])
    cancel.add_argument("ids", nargs="+", metavar="ID")
    cancel.add_argument("--reason", help="recorded with the cancellation")

    clusters = command("clusters", cmd_clusters_list, "list, register or deregister spoke clusters")
    actions = clusters.add_subparsers(dest="action", metavar="ACTION")
    command("list", cmd_clusters_list, "list clusters (the default)", parent=actions)
    register = command(
        "register", cmd_clusters_register, "register clusters from YAML or JSON files", actions
    )
    register.add_argument("files", nargs="+", metavar="FILE")
    register.add_argument("--upsert", action="store_true", help="update clusters that already exist")
    deregister = command("deregister", cmd_clusters_deregister, "remove clusters", parent=actions)
    deregister.add_argument("names", nargs="+", metavar="NAME")

    command("stats", cmd_stats, "counts, carbon emitted and avoided, last cycle")
    preview = command("preview", cmd_preview, "where and when one AppWrapper would run, and the saving")
    preview.add_argument("file", metavar="FILE")
    command("version", cmd_version, "the client's version and the hub it talks to")
    completion = command(
        "completion", cmd_completion, "shell completion script: source <(caspianctl completion bash)"
    )
    completion.add_argument("shell", choices=("bash", "zsh", "fish", "tcsh"), nargs="?", default="bash")
    return parser
