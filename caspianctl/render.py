"""Tables and lines for people: AppWrappers, clusters, stats, previews and watch events (-o table, wide)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from google.protobuf.message import Message
from rich.table import Table

from caspian.v1 import common_pb2, hub_pb2, optimizer_pb2
from caspianctl.interruptible import progress_text, rule_text, segment_counts, segments_text
from caspianctl.quantities import format_cpu, format_duration, format_memory
from services.common.timeconv import duration_seconds, from_timestamp

PHASE_PREFIX = "APP_WRAPPER_PHASE_"
TERMINAL_PHASES = frozenset(
    {
        common_pb2.APP_WRAPPER_PHASE_SUCCEEDED,
        common_pb2.APP_WRAPPER_PHASE_FAILED,
        common_pb2.APP_WRAPPER_PHASE_CANCELLED,
        common_pb2.APP_WRAPPER_PHASE_UNSCHEDULABLE,
    }
)


def phase_name(phase: int) -> str:
    return common_pb2.AppWrapperPhase.Name(phase).removeprefix(PHASE_PREFIX).capitalize()


def phase_from_text(text: str) -> int:
    name = text.strip().upper()
    if not name.startswith(PHASE_PREFIX):
        name = PHASE_PREFIX + name
    try:
        value = common_pb2.AppWrapperPhase.Value(name)
    except ValueError:
        known = ", ".join(
            n.removeprefix(PHASE_PREFIX).lower()
            for n in common_pb2.AppWrapperPhase.keys()
            if not n.endswith("UNSPECIFIED")
        )
        raise ValueError(f"unknown phase {text!r}; one of {known}") from None
    if value == common_pb2.APP_WRAPPER_PHASE_UNSPECIFIED:
        raise ValueError(f"unknown phase {text!r}")
    return value


def when(message: Message, field: str) -> str:
    if not message.HasField(field):
        return "-"
    return from_timestamp(getattr(message, field)).strftime("%Y-%m-%d %H:%M:%SZ")


def grams(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value / 1000:,.2f} kg"
    return f"{value:,.1f} g"


def appwrapper_table(
    app_wrappers: Sequence[common_pb2.AppWrapper], title: str | None = None, wide: bool = False
) -> Table:
    table = Table(title=title, title_justify="left")
    columns = ["ID", "NAME", "TENANT", "PHASE", "CLUSTER", "PLANNED START", "DEADLINE", "gCO2"]
    if wide:
        columns += [
            "NAMESPACE",
            "CPU",
            "MEMORY",
            "GPUS",
            "RUNTIME",
            "STARTED",
            "FINISHED",
            "AGNOSTIC gCO2",
            "AGNOSTIC CLUSTER",
            "AGNOSTIC START",
        ]
        # Segment columns only when some job may pause: the wide table is already wide.
        segmented = any(aw.HasField("interruptible") for aw in app_wrappers)
        columns += ["SEGMENTS", "PROGRESS"] if segmented else []
        columns += ["REASON"]
    for column in columns:
        table.add_column(column, no_wrap=column != "REASON", justify="right" if "gCO2" in column else "left")
    for aw in app_wrappers:
        carbon = aw.status.carbon
        figure = carbon.actual_gco2 or carbon.planned_gco2
        row = [
            aw.id,
            aw.name or "-",
            aw.tenant or "-",
            phase_name(aw.status.phase),
            aw.status.target_cluster or "-",
            when(aw.status, "planned_start"),
            when(aw, "deadline"),
            f"{figure:,.1f}" if figure else "-",
        ]
        if wide:
            resources = aw.template.resources
            row += [
                aw.namespace or "-",
                format_cpu(resources.cpu_millis),
                format_memory(resources.memory_bytes),
                str(resources.gpus),
                format_duration(duration_seconds(aw.template.expected_runtime)),
                when(aw.status, "started_at"),
                when(aw.status, "finished_at"),
                f"{carbon.counterfactual_gco2:,.1f}" if carbon.counterfactual_gco2 else "-",
                aw.status.baseline_cluster or "-",
                when(aw.status, "baseline_start"),
            ]
            row += [segment_counts(aw), progress_text(aw)] if segmented else []
            row += [aw.status.reason or "-"]
        table.add_row(*row)
    return table


def appwrapper_detail(aw: common_pb2.AppWrapper) -> Table:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    template, status, carbon = aw.template, aw.status, aw.status.carbon
    rows = [
        ("ID", aw.id),
        ("Name", aw.name or "-"),
        ("Tenant", aw.tenant or "-"),
        ("Namespace", aw.namespace or "-"),
        ("Phase", phase_name(status.phase)),
        ("Reason", status.reason or "-"),
        ("Image", template.image or "-"),
        ("Command", " ".join([*template.command, *template.args]) or "-"),
        (
            "Resources",
            f"cpu {format_cpu(template.resources.cpu_millis)}, memory "
            f"{format_memory(template.resources.memory_bytes)}, gpus {template.resources.gpus}",
        ),
        ("Runtime", format_duration(duration_seconds(template.expected_runtime))),
        ("Earliest start", when(aw, "earliest_start")),
        ("Deadline", when(aw, "deadline")),
        ("Clusters", _clusters(aw)),
        ("Cluster", status.target_cluster or "-"),
        ("Planned start", when(status, "planned_start")),
        ("Started", when(status, "started_at")),
        ("Finished", when(status, "finished_at")),
        ("Job", status.job_name or "-"),
        *_interruptible_rows(aw),
        (
            "Carbon",
            f"planned {grams(carbon.planned_gco2)}, actual {grams(carbon.actual_gco2)}, "
            f"counterfactual {grams(carbon.counterfactual_gco2)}, energy {carbon.energy_wh:,.1f} Wh",
        ),
        ("Carbon-agnostic", _baseline(status)),
        ("Saving split", _split(carbon)),
        ("Labels", ", ".join(f"{k}={v}" for k, v in sorted(aw.labels.items())) or "-"),
        ("Revision", str(aw.revision)),
    ]
    for key, value in rows:
        table.add_row(key, value)
    return table


def _interruptible_rows(aw: common_pb2.AppWrapper) -> list[tuple[str, str]]:
    """The segment rows of an interruptible job; none for one that always runs in one piece."""
    if not aw.HasField("interruptible"):
        return []
    return [
        ("Interruptible", rule_text(aw.interruptible)),
        ("Planned segments", segments_text(aw.status.planned_segments)),
        ("Run segments", segments_text(aw.status.run_segments)),
        ("Progress", progress_text(aw)),
    ]


def _baseline(status: common_pb2.AppWrapperStatus) -> str:
    """Where and when the carbon-agnostic baseline would have run the job."""
    if not status.baseline_cluster:
        return "-"
    return f"{status.baseline_cluster} at {when(status, 'baseline_start')}"


def _split(carbon: common_pb2.CarbonAccount) -> str:
    """The accounted saving's spatial and temporal parts (they add up to counterfactual - actual)."""
    if not (carbon.HasField("spatial_saving_gco2") and carbon.HasField("temporal_saving_gco2")):
        return "-"
    return f"spatial {grams(carbon.spatial_saving_gco2)}, temporal {grams(carbon.temporal_saving_gco2)}"


def _clusters(aw: common_pb2.AppWrapper) -> str:
    parts = []
    if aw.required_clusters:
        parts.append("required " + ",".join(aw.required_clusters))
    if aw.preferred_clusters:
        parts.append("preferred " + ",".join(aw.preferred_clusters))
    if aw.excluded_clusters:
        parts.append("excluded " + ",".join(aw.excluded_clusters))
    return "; ".join(parts) or "any"


def cluster_table(clusters: Iterable[common_pb2.ClusterInfo], wide: bool = False) -> Table:
    table = Table()
    columns = ["NAME", "ZONE", "READY", "CPU FREE/CAP", "MEMORY FREE/CAP", "GPUS", "CONTEXT", "REASON"]
    if wide:
        columns += ["NAMESPACE", "PUE", "LABELS"]
    for column in columns:
        table.add_column(column, no_wrap=True)
    for c in clusters:
        row = [
            c.name,
            c.zone or "-",
            "yes" if c.ready else "no",
            f"{format_cpu(c.free.cpu_millis)}/{format_cpu(c.capacity.cpu_millis)}",
            f"{format_memory(c.free.memory_bytes)}/{format_memory(c.capacity.memory_bytes)}",
            f"{c.free.gpus}/{c.capacity.gpus}",
            c.kube_context or "-",
            c.not_ready_reason or "-",
        ]
        if wide:
            labels = ",".join(f"{k}={v}" for k, v in sorted(c.labels.items()))
            row += [c.job_namespace or "-", f"{c.power.pue:g}" if c.power.pue else "-", labels or "-"]
        table.add_row(*row)
    return table


def stats_table(stats: hub_pb2.GetStatsResponse) -> Table:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    phases = ", ".join(f"{phase_name(p.phase)} {p.count}" for p in stats.phases if p.count) or "none"
    saving = (
        f" ({100 * stats.avoided_gco2 / stats.counterfactual_gco2:.1f} % of the carbon-agnostic counterfactual)"
        if stats.counterfactual_gco2 > 0
        else ""
    )
    table.add_row("Hub time", when(stats, "now") if stats.HasField("now") else "not reported")
    table.add_row("AppWrappers", f"{stats.app_wrappers_total} total: {phases}")
    table.add_row("Clusters", f"{stats.clusters_ready} ready of {stats.clusters_total}")
    table.add_row("Emitted", grams(stats.emitted_gco2))
    table.add_row("Counterfactual", grams(stats.counterfactual_gco2))
    table.add_row("Avoided", grams(stats.avoided_gco2) + saving)
    table.add_row("Planned", grams(stats.planned_gco2))
    if stats.HasField("last_cycle") and stats.last_cycle.cycle:
        table.add_row("Last cycle", cycle_text(stats.last_cycle))
        for note in stats.last_cycle.notes:
            table.add_row("", f"note: {note}")
    else:
        table.add_row("Last cycle", "none yet")
    return table


def cycle_text(cycle: hub_pb2.CycleSummary) -> str:
    status = (
        optimizer_pb2.SolveStatus.Name(cycle.solve_status).removeprefix("SOLVE_STATUS_")
        if cycle.solve_status
        else "no solve"
    )
    flags = [
        name
        for name, on in (
            ("carbon stale", cycle.carbon_stale),
            ("carbon blind", cycle.carbon_blind),
            ("fallback", cycle.fallback),
        )
        if on
    ]
    # The outcome (ok, idle, fallback, error) comes first: an idle or failed cycle has no solve status.
    outcome = f"{cycle.outcome}, " if cycle.outcome else ""
    text = (
        f"#{cycle.cycle} at {when(cycle, 'started_at')}, {duration_seconds(cycle.duration):.3f} s, "
        f"{outcome}{status}; "
        f"considered {cycle.considered}, planned {cycle.planned}, unplaced {cycle.unplaced}, "
        f"dispatched {cycle.dispatched}, unschedulable {cycle.unschedulable}; gap {f'{cycle.gap:.4f}' if cycle.HasField('gap') else 'none (no plan or no bound)'}"
    )
    return text + (f" [{', '.join(flags)}]" if flags else "")


def preview_table(preview: hub_pb2.PreviewScheduleResponse) -> Table:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("Placeable", "yes" if preview.placeable else "no")
    if preview.reason:
        table.add_row("Reason", preview.reason)
    if preview.placeable:
        saving = preview.saving_gco2
        share = f" ({100 * saving / preview.start_now_gco2:.1f} %)" if preview.start_now_gco2 > 0 else ""
        table.add_row("Cluster", preview.cluster)
        table.add_row("Planned start", when(preview, "planned_start"))
        table.add_row("Delay", format_duration(duration_seconds(preview.delay)))
        table.add_row("Planned", grams(preview.planned_gco2))
        where = f"on {preview.start_now_cluster}" if preview.start_now_cluster else "least-loaded cluster"
        table.add_row(
            "Start now",
            grams(preview.start_now_gco2) + f" (carbon-agnostic: earliest start, {where})",
        )
        table.add_row("Saving", grams(saving) + share)
        if preview.segments:
            table.add_row("Segments", segments_text(preview.segments))
            table.add_row(
                "One piece", f"{grams(preview.one_piece_gco2)} from {when(preview, 'one_piece_start')}"
            )
            table.add_row(
                "Interruptible saving", grams(preview.interruptible_saving_gco2) + " (pausing vs one piece)"
            )
        if saving < 0:
            table.add_row(
                "Why negative",
                "the plan emits more than starting now: the scheduler also weighs preferred clusters (a "
                "discount), lateness and capacity held by other jobs, not carbon alone",
            )
    return table


WATCH_HEADER = f"{'REVISION':>9}  {'EVENT':<8}  {'ID':<28}  {'PHASE':<14}  {'CLUSTER':<14}  PLANNED START"


def watch_line(event: hub_pb2.WatchAppWrappersResponse) -> str:
    kind = hub_pb2.WatchEventType.Name(event.type).removeprefix("WATCH_EVENT_TYPE_")
    aw = event.app_wrapper
    return (
        f"{event.revision:>9}  {kind:<8}  {aw.id:<28}  {phase_name(aw.status.phase):<14}  "
        f"{aw.status.target_cluster or '-':<14}  {when(aw.status, 'planned_start')}"
    )
