"""The live terminal view of `make run`: clusters with their grid intensity and free capacity, the last
scheduling cycle's outcome and notes, AppWrappers by phase, and carbon emitted so far against the
carbon-agnostic counterfactual. Off a terminal, `cycle_line` gives one line per cycle instead."""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from caspian.v1 import carbon_pb2, carbon_pb2_grpc, common_pb2, hub_pb2, hub_pb2_grpc, optimizer_pb2
from caspianctl.quantities import format_cpu, format_memory
from services.common.timeconv import from_timestamp


@dataclass
class Snapshot:
    stats: hub_pb2.GetStatsResponse
    clusters: list[common_pb2.ClusterInfo]
    intensity: dict[str, carbon_pb2.GetIntensityResponse]
    # Set when the hub did not answer; the rest is then empty.
    error: str = ""
    synthetic: set[str] = field(default_factory=set)


class StackClient:
    def __init__(
        self,
        hub_address: str,
        carbon_address: str,
        timeout: float = 5.0,
        metadata: tuple[tuple[str, str], ...] = (),
    ):
        self.hub_channel = grpc.insecure_channel(hub_address)
        self.carbon_channel = grpc.insecure_channel(carbon_address)
        self.hub = hub_pb2_grpc.HubServiceStub(self.hub_channel)
        self.carbon = carbon_pb2_grpc.CarbonServiceStub(self.carbon_channel)
        self.timeout = timeout
        self.metadata = metadata

    def snapshot(self) -> Snapshot:
        try:
            stats = self.hub.GetStats(hub_pb2.GetStatsRequest(), timeout=self.timeout, metadata=self.metadata)
            clusters = list(
                self.hub.ListClusters(
                    hub_pb2.ListClustersRequest(), timeout=self.timeout, metadata=self.metadata
                ).clusters
            )
        except grpc.RpcError as exc:
            return Snapshot(
                hub_pb2.GetStatsResponse(), [], {}, error=f"hub: {exc.code().name} {exc.details()}"
            )
        intensity = {}
        for zone in sorted({c.zone for c in clusters if c.zone}):
            try:
                intensity[zone] = self.carbon.GetIntensity(
                    carbon_pb2.GetIntensityRequest(zone=zone), timeout=self.timeout
                )
            except grpc.RpcError:
                pass
        synthetic = {z for z, reading in intensity.items() if reading.source.synthetic}
        return Snapshot(stats, clusters, intensity, synthetic=synthetic)

    def close(self) -> None:
        self.hub_channel.close()
        self.carbon_channel.close()


def _phase_name(phase: int) -> str:
    return common_pb2.AppWrapperPhase.Name(phase).removeprefix("APP_WRAPPER_PHASE_").title()


def cycle_outcome(summary: hub_pb2.CycleSummary) -> str:
    """The last cycle in words: what it decided, how it solved, and why it was degraded if it was."""
    if summary.cycle == 0:
        return "no scheduling cycle yet"
    when = (
        from_timestamp(summary.started_at).strftime("%m-%d %H:%M") if summary.HasField("started_at") else "?"
    )
    solved = (
        optimizer_pb2.SolveStatus.Name(summary.solve_status).removeprefix("SOLVE_STATUS_").lower()
        if summary.solve_status
        else "no solve"
    )
    flags = [
        name
        for name, on in (
            ("carbon-blind", summary.carbon_blind),
            ("stale forecasts", summary.carbon_stale),
            ("optimizer fallback", summary.fallback),
        )
        if on
    ]
    text = (
        f"cycle {summary.cycle} at {when}: {summary.considered} considered, {summary.planned} planned, "
        f"{summary.dispatched} dispatched, {summary.unplaced} unplaced, {summary.unschedulable} unschedulable; "
        f"{solved}"
    )
    if flags:
        text += "; " + ", ".join(flags)
    if summary.notes:
        text += "; notes: " + "; ".join(summary.notes)
    return text


def cycle_line(stats: hub_pb2.GetStatsResponse) -> str:
    """One plain line per cycle, for a log or a pipe."""
    counts: dict[int, int] = {p.phase: p.count for p in stats.phases}
    phases = " ".join(
        f"{_phase_name(p).lower()}={counts[p]}" for p in common_pb2.AppWrapperPhase.values() if counts.get(p)
    )
    return f"{cycle_outcome(stats.last_cycle)} | {phases or 'no AppWrappers'}"


def render(snapshot: Snapshot) -> Group:
    if snapshot.error:
        return Group(Text(f"waiting for the hub ({snapshot.error})", style="yellow"))
    now = (
        from_timestamp(snapshot.stats.now).strftime("%Y-%m-%d %H:%M UTC")
        if snapshot.stats.HasField("now")
        else "-"
    )
    # Narrow headers and a box without side borders so that the table fits 80 columns with names whole.
    clusters = Table(title=f"Clusters (simulated time {now})", box=box.SIMPLE_HEAD, pad_edge=False)
    width = max([len(c.name) for c in snapshot.clusters] + [7])
    clusters.add_column("cluster", no_wrap=True, min_width=width)
    clusters.add_column("zone", no_wrap=True)
    clusters.add_column("gCO2/kWh", justify="right", no_wrap=True)
    clusters.add_column("source")
    for column in ("free CPU", "free mem", "GPU"):
        clusters.add_column(column, justify="right", no_wrap=True)
    clusters.add_column("ready")
    for cluster in snapshot.clusters:
        reading = snapshot.intensity.get(cluster.zone)
        value = f"{reading.point.gco2_per_kwh:,.0f}" if reading else "?"
        source = "-"
        if reading:
            source = reading.source.provider + (" (stale)" if reading.source.stale else "")
        zone = cluster.zone + ("*" if cluster.zone in snapshot.synthetic else "")
        clusters.add_row(
            cluster.name,
            zone,
            value,
            source,
            format_cpu(cluster.free.cpu_millis),
            format_memory(cluster.free.memory_bytes),
            str(cluster.free.gpus),
            "yes" if cluster.ready else f"no {cluster.not_ready_reason}".strip(),
        )
    parts: list = [clusters]
    if snapshot.synthetic:
        parts.append(Text("* synthetic grid data, not measured"))
    parts.append(Text("Last " + cycle_outcome(snapshot.stats.last_cycle)))
    # One wrapping line rather than a table: eight phase names do not fit 80 columns as headers.
    counts: dict[int, int] = {p.phase: p.count for p in snapshot.stats.phases}
    shown = [p for p in common_pb2.AppWrapperPhase.values() if p != 0]
    phases = Text("AppWrappers: " + "   ".join(f"{_phase_name(p)} {counts.get(p, 0)}" for p in shown))
    carbon = Table(title="Carbon so far (finished jobs)", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("emitted gCO2", "carbon-agnostic gCO2", "avoided gCO2", "saved"):
        carbon.add_column(column, justify="right")
    emitted, counterfactual = snapshot.stats.emitted_gco2, snapshot.stats.counterfactual_gco2
    saved = f"{100 * (1 - emitted / counterfactual):.1f}%" if counterfactual > 0 else "-"
    carbon.add_row(f"{emitted:,.1f}", f"{counterfactual:,.1f}", f"{snapshot.stats.avoided_gco2:,.1f}", saved)
    parts += [phases, carbon]
    return Group(*parts)
