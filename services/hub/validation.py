"""Door checks: a bad AppWrapper or cluster is refused with InvalidArgument naming the field path.

Every check raises the first problem it finds; field paths follow the request message, e.g.
`app_wrapper.template.resources.cpu_millis` or `app_wrapper.template.env[2].value`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from caspian.v1 import common_pb2
from services.common.errors import InvalidArgument, NotFound
from services.common.jobrules import resources_problem, runtime_problem
from services.common.timeconv import timestamp_seconds
from services.hub.fit import NO_CLUSTER, eligible_clusters, fits, why_nothing_fits
from services.hub.images import check_image
from services.hub.images import shown as _printable
from services.hub.segments import interruptible_problem

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
ZONE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
KUBE_CONTEXT = re.compile(r"^[A-Za-z0-9@:_./-]{1,253}$")
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$")
REQUEST_ID = re.compile(r"^[\x21-\x7e]{1,128}$")

# Image references, after the grammar of github.com/distribution/reference.
SYSTEM_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease")
RESERVED_LABEL_PREFIXES = ("caspian.io/",)
RESERVED_LABEL_KEYS = ("app.kubernetes.io/managed-by",)
MAX_PRIORITY = 1000
MAX_STRING_BYTES = 4096
_MAX_TIMESTAMP_SECONDS = 253402300799  # 9999-12-31T23:59:59Z, the protobuf Timestamp limit


@dataclass(frozen=True)
class Limits:
    max_app_wrapper_bytes: int = 65536
    max_env_vars: int = 64
    max_env_value_bytes: int = 32768
    max_args: int = 256
    max_labels: int = 64
    # How far ahead an earliest start or deadline may lie.
    max_horizon_seconds: float = 30 * 86400.0
    # The optimizer's horizon: a longer job could never be placed.
    planning_horizon_seconds: float = 86400.0
    allowed_namespaces: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings) -> Limits:
        return cls(
            max_app_wrapper_bytes=settings.max_app_wrapper_bytes,
            max_env_vars=settings.max_env_vars,
            max_env_value_bytes=settings.max_env_value_bytes,
            max_args=settings.max_args,
            max_labels=settings.max_labels,
            max_horizon_seconds=settings.max_horizon_seconds,
            planning_horizon_seconds=float(settings.slot_seconds * settings.horizon_slots),
            allowed_namespaces=tuple(settings.allowed_namespaces),
        )


def check_dns_label(value: str, field: str, what: str = "name") -> None:
    if not DNS_LABEL.match(value):
        raise InvalidArgument(
            f"{what} {_printable(value)} must be a DNS-1123 label: at most 63 characters of a-z, 0-9 and "
            "'-', starting and ending with a letter or digit",
            field=field,
        )


# Longer than any id the door accepts (a DNS-1123 label); such an id names nothing, and is never echoed whole.
MAX_ID_CHARS = 253


def check_id_length(value: str, field: str = "id") -> None:
    """Get and Cancel of an id no AppWrapper can have: NOT_FOUND at once, quoting only its start."""
    if len(value) > MAX_ID_CHARS:
        raise NotFound(f"AppWrapper {_printable(value)} not found ({len(value)} characters)", field=field)


def check_phases(phases, field: str = "phases") -> None:
    """A phase filter, as ListAppWrappers and WatchAppWrappers take it."""
    for i, phase in enumerate(phases):
        if phase not in common_pb2.AppWrapperPhase.values() or phase == 0:
            raise InvalidArgument(f"unknown phase {phase}", field=f"{field}[{i}]")


def check_request_id(value: str, field: str = "request_id") -> None:
    if value and not REQUEST_ID.match(value):
        raise InvalidArgument("must be 1-128 printable ASCII characters without spaces", field=field)


def check_labels(labels: Mapping[str, str], field: str, limits: Limits, reserved: bool = True) -> None:
    if len(labels) > limits.max_labels:
        raise InvalidArgument(f"at most {limits.max_labels} labels", field=field)
    for key, value in labels.items():
        if "/" in key:
            prefix, _, name = key.rpartition("/")
            good_key = len(prefix) <= 253 and DNS_SUBDOMAIN.match(prefix) and LABEL_NAME.match(name)
        else:
            good_key = LABEL_NAME.match(key)
        if not good_key:
            raise InvalidArgument(
                f"label key {_printable(key)} must be [prefix/]name: prefix a DNS-1123 subdomain, name at "
                "most 63 characters of letters, digits, '-', '_', '.'",
                field=_label_field(field, key),
            )
        if reserved and (key in RESERVED_LABEL_KEYS or key.startswith(RESERVED_LABEL_PREFIXES)):
            raise InvalidArgument(
                f"label key {key!r} is reserved for CASPIAN", field=_label_field(field, key)
            )
        if value and not LABEL_NAME.match(value):
            raise InvalidArgument(
                f"label value {_printable(value)} must be at most 63 characters of letters, digits, "
                "'-', '_', '.', starting and ending with a letter or digit",
                field=_label_field(field, key),
            )


def _label_field(field: str, key: str) -> str:
    return f"{field}[{key!r}]" if len(key) <= 80 else field


def _check_timestamp(ts, field: str) -> None:
    if not 0 <= ts.nanos < 1_000_000_000:
        raise InvalidArgument("nanos must be in [0, 1e9)", field=f"{field}.nanos")
    if ts.seconds < 0 or ts.seconds > _MAX_TIMESTAMP_SECONDS:
        raise InvalidArgument("must lie between 1970 and 9999", field=field)


def _check_strings(values, field: str, limits: Limits) -> None:
    limit = limits.max_env_value_bytes
    for i, value in enumerate(values):
        if "\x00" in value:
            raise InvalidArgument("must not contain NUL characters", field=f"{field}[{i}]")
        # A UTF-8 character takes at most 4 bytes: short strings need no encoding to be measured.
        if len(value) * 4 > limit and len(value.encode()) > limit:
            raise InvalidArgument(f"longer than {limit} bytes", field=f"{field}[{i}]")


def check_template(template: common_pb2.JobTemplate, field: str, limits: Limits) -> float:
    """Check a job template; return its expected runtime in seconds."""
    check_image(template.image, f"{field}.image")
    command, args, env_vars = template.command, template.args, template.env
    if len(command) + len(args) > limits.max_args:
        raise InvalidArgument(
            f"command and args hold at most {limits.max_args} entries", field=f"{field}.args"
        )
    if command:
        _check_strings(command, f"{field}.command", limits)
    if args:
        _check_strings(args, f"{field}.args", limits)
    if env_vars:
        _check_env(env_vars, field, limits)
    resources = template.resources
    # The shared job rule first (what the optimizer checks too), then the door's own: a Job requests some
    # CPU and memory.
    problem = resources_problem(resources.cpu_millis, resources.memory_bytes, resources.gpus)
    if problem is not None:
        raise InvalidArgument(problem[1], field=f"{field}.resources.{problem[0]}")
    if resources.cpu_millis <= 0:
        raise InvalidArgument("must be above zero", field=f"{field}.resources.cpu_millis")
    if resources.memory_bytes <= 0:
        raise InvalidArgument("must be above zero", field=f"{field}.resources.memory_bytes")
    runtime = template.expected_runtime
    seconds, nanos = runtime.seconds, runtime.nanos
    problem = runtime_problem(seconds, nanos)
    if problem is not None:
        sub = f".{problem[0]}" if problem[0] else ""
        raise InvalidArgument(problem[1], field=f"{field}.expected_runtime{sub}")
    runtime_s = seconds + nanos / 1e9
    if runtime_s > limits.planning_horizon_seconds:
        raise InvalidArgument(
            f"{runtime_s:.0f} s is longer than the planning horizon ({limits.planning_horizon_seconds:.0f} s)",
            field=f"{field}.expected_runtime",
        )
    return runtime_s


def _check_env(env_vars, field: str, limits: Limits) -> None:
    if len(env_vars) > limits.max_env_vars:
        raise InvalidArgument(f"at most {limits.max_env_vars} environment variables", field=f"{field}.env")
    limit = limits.max_env_value_bytes
    seen: set[str] = set()
    for i, env in enumerate(env_vars):
        name, value = env.name, env.value
        if len(name) > 253 or not ENV_NAME.match(name):
            raise InvalidArgument(
                f"{_printable(name)} is not a valid environment variable name", field=f"{field}.env[{i}].name"
            )
        if name in seen:
            raise InvalidArgument(f"{name!r} is set twice", field=f"{field}.env[{i}].name")
        seen.add(name)
        if len(value) * 4 > limit and len(value.encode()) > limit:
            raise InvalidArgument(f"longer than {limit} bytes", field=f"{field}.env[{i}].value")
        if "\x00" in value:
            raise InvalidArgument("must not contain NUL characters", field=f"{field}.env[{i}].value")


def check_app_wrapper(
    app_wrapper: common_pb2.AppWrapper,
    *,
    clusters: Mapping[str, common_pb2.ClusterInfo],
    now: float,
    limits: Limits,
    field: str = "app_wrapper",
    known_templates: dict[bytes, float] | None = None,
) -> None:
    """Every door check of one AppWrapper as submitted (before defaults are applied); `now` in epoch seconds.

    `known_templates` (template bytes -> runtime) remembers templates that passed, for the same limits.

    Runs once per submission on the bulk path too, so fields are read once and paths built only on error.
    """
    size = app_wrapper.ByteSize()
    if size > limits.max_app_wrapper_bytes:
        raise InvalidArgument(
            f"{size} bytes is above the limit of {limits.max_app_wrapper_bytes}", field=field
        )
    app_wrapper_id, name, tenant, namespace = (
        app_wrapper.id,
        app_wrapper.name,
        app_wrapper.tenant,
        app_wrapper.namespace,
    )
    if app_wrapper_id and not DNS_LABEL.match(app_wrapper_id):
        check_dns_label(app_wrapper_id, f"{field}.id", "id")
    if name and (len(name) > 253 or not DNS_SUBDOMAIN.match(name)):
        raise InvalidArgument(f"name {_printable(name)} must be a DNS-1123 subdomain", field=f"{field}.name")
    if tenant and not DNS_LABEL.match(tenant):
        check_dns_label(tenant, f"{field}.tenant", "tenant")
    if namespace:
        check_dns_label(namespace, f"{field}.namespace", "namespace")
        if limits.allowed_namespaces:
            if namespace not in limits.allowed_namespaces:
                raise InvalidArgument(
                    f"namespace {namespace!r} is not one of {', '.join(limits.allowed_namespaces)}",
                    field=f"{field}.namespace",
                )
        elif namespace in SYSTEM_NAMESPACES:
            raise InvalidArgument(f"namespace {namespace!r} is reserved", field=f"{field}.namespace")
    if not app_wrapper.HasField("template"):
        raise InvalidArgument("a template is required", field=f"{field}.template")
    template = app_wrapper.template
    runtime_s: float | None
    if known_templates is None:
        runtime_s = check_template(template, f"{field}.template", limits)
    else:
        # Templates already found good, by their bytes: bulk submissions mostly share a few.
        key = template.SerializeToString(deterministic=True)
        runtime_s = known_templates.get(key)
        if runtime_s is None:
            runtime_s = check_template(template, f"{field}.template", limits)
            if len(known_templates) >= 4096:
                known_templates.clear()
            known_templates[key] = runtime_s
    segment_terms = interruptible_problem(app_wrapper, runtime_s)
    if segment_terms is not None:
        raise InvalidArgument(segment_terms[1], field=f"{field}.interruptible.{segment_terms[0]}")
    if not 0 <= app_wrapper.priority <= MAX_PRIORITY:
        raise InvalidArgument(f"must be between 0 and {MAX_PRIORITY}", field=f"{field}.priority")
    labels = app_wrapper.labels
    if labels:
        check_labels(labels, f"{field}.labels", limits)

    now_s = now
    horizon = limits.max_horizon_seconds
    earliest_s = now_s
    if app_wrapper.HasField("earliest_start"):
        earliest = app_wrapper.earliest_start
        _check_timestamp(earliest, f"{field}.earliest_start")
        earliest_s = max(now_s, timestamp_seconds(earliest))
        if earliest_s - now_s > horizon:
            raise InvalidArgument(
                f"{_iso(earliest_s)} is {_ahead(horizon)} ({_hub_now(now_s)})",
                field=f"{field}.earliest_start",
            )
    if app_wrapper.HasField("deadline"):
        deadline = app_wrapper.deadline
        _check_timestamp(deadline, f"{field}.deadline")
        deadline_s = timestamp_seconds(deadline)
        if deadline_s < now_s:
            raise InvalidArgument(
                f"{_iso(deadline_s)} is in the past ({_hub_now(now_s)})", field=f"{field}.deadline"
            )
        if deadline_s - now_s > horizon:
            raise InvalidArgument(
                f"{_iso(deadline_s)} is {_ahead(horizon)} ({_hub_now(now_s)})", field=f"{field}.deadline"
            )
        if deadline_s < earliest_s + runtime_s:
            raise InvalidArgument(
                f"{_iso(deadline_s)} leaves no room: it must be at least the earliest start "
                f"({_iso(earliest_s)}) plus the expected runtime ({runtime_s:.0f} s), so "
                f"{_iso(earliest_s + runtime_s)} or later ({_hub_now(now_s)})",
                field=f"{field}.deadline",
            )

    required, preferred, excluded = (
        app_wrapper.required_clusters,
        app_wrapper.preferred_clusters,
        app_wrapper.excluded_clusters,
    )
    resources = template.resources
    if not (required or preferred or excluded):
        # The common case: any registered cluster will do.
        if any(fits(resources, info.capacity) for info in clusters.values()):
            return
    for list_name, names in (
        ("required_clusters", required),
        ("preferred_clusters", preferred),
        ("excluded_clusters", excluded),
    ):
        for i, cluster in enumerate(names):
            if cluster not in clusters:
                raise InvalidArgument(
                    f"cluster {_printable(cluster)} is not registered", field=f"{field}.{list_name}[{i}]"
                )
    eligible = eligible_clusters(app_wrapper, clusters)
    if not eligible:
        if not clusters:
            raise InvalidArgument(NO_CLUSTER, field=f"{field}.template.resources")
        where = "required_clusters" if required else "excluded_clusters"
        raise InvalidArgument("the affinities leave no registered cluster", field=f"{field}.{where}")
    if not any(fits(resources, clusters[n].capacity) for n in eligible):
        dimension, message = why_nothing_fits(resources, {n: clusters[n].capacity for n in eligible})
        raise InvalidArgument(
            message,
            field=f"{field}.template.resources.{dimension}" if dimension else f"{field}.template.resources",
        )


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _hub_now(now_s: float) -> str:
    return f"the hub's time is {_iso(now_s)}"


def _ahead(horizon: float) -> str:
    days = horizon / 86400
    return f"more than {days:g} days ahead" if days >= 1 else f"more than {horizon:.0f} s ahead"


SETTABLE_CLUSTER_FIELDS = ("zone", "kube_context", "job_namespace", "capacity", "power", "labels")


def check_cluster(cluster: common_pb2.ClusterInfo, limits: Limits, field: str = "cluster") -> None:
    check_dns_label(cluster.name, f"{field}.name", "cluster name")
    if not ZONE.match(cluster.zone):
        raise InvalidArgument(
            f"zone {_printable(cluster.zone)} must be 1-64 letters, digits, '-', '_' or '.'",
            field=f"{field}.zone",
        )
    if cluster.kube_context and not KUBE_CONTEXT.match(cluster.kube_context):
        raise InvalidArgument("not a valid kube context name", field=f"{field}.kube_context")
    if cluster.job_namespace:
        check_dns_label(cluster.job_namespace, f"{field}.job_namespace", "namespace")
    capacity = cluster.capacity
    if capacity.cpu_millis <= 0:
        raise InvalidArgument("must be above zero", field=f"{field}.capacity.cpu_millis")
    if capacity.memory_bytes <= 0:
        raise InvalidArgument("must be above zero", field=f"{field}.capacity.memory_bytes")
    if capacity.gpus < 0:
        raise InvalidArgument("must not be negative", field=f"{field}.capacity.gpus")
    power = cluster.power
    for name in ("idle_watts", "peak_watts", "watts_per_core", "watts_per_gpu", "watts_per_gib", "pue"):
        value = getattr(power, name)
        if not math.isfinite(value) or value < 0 or value > 1e9:
            raise InvalidArgument("must be a finite number, not negative", field=f"{field}.power.{name}")
    if power.pue and not 1.0 <= power.pue <= 5.0:
        raise InvalidArgument("PUE must be between 1 and 5 (0 means 1)", field=f"{field}.power.pue")
    if power.peak_watts and power.peak_watts < power.idle_watts:
        raise InvalidArgument("must not be below idle_watts", field=f"{field}.power.peak_watts")
    check_labels(cluster.labels, f"{field}.labels", limits, reserved=False)
