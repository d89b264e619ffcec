"""The live terminal view of `make run`: clusters with their grid intensity and free capacity, AppWrappers by
phase, and carbon emitted so far against the carbon-agnostic counterfactual."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from rich.console import Group
from rich.table import Table

from caspian.v1 import carbon_pb2, carbon_pb2_grpc, common_pb2, hub_pb2, hub_pb2_grpc
from caspianctl.quantities import format_cpu, format_memory
from services.common.timeconv import from_timestamp


@dataclass
class Snapshot:
    stats: hub_pb2.GetStatsResponse
    clusters: list[common_pb2.ClusterInfo]
    intensity: dict[str, carbon_pb2.GetIntensityResponse]


class StackClient:
    def __init__(self, hub_address: str, carbon_address: str, timeout: float = 5.0):
        self.hub_channel = grpc.insecure_channel(hub_address)
        self.carbon_channel = grpc.insecure_channel(carbon_address)
        self.hub = hub_pb2_grpc.HubServiceStub(self.hub_channel)
        self.carbon = carbon_pb2_grpc.CarbonServiceStub(self.carbon_channel)
        self.timeout = timeout

    def snapshot(self) -> Snapshot:
        stats = self.hub.GetStats(hub_pb2.GetStatsRequest(), timeout=self.timeout)
        clusters = list(self.hub.ListClusters(hub_pb2.ListClustersRequest(), timeout=self.timeout).clusters)
        intensity = {}
        for zone in sorted({c.zone for c in clusters if c.zone}):
            try:
                intensity[zone] = self.carbon.GetIntensity(
                    carbon_pb2.GetIntensityRequest(zone=zone), timeout=self.timeout
                )
            except grpc.RpcError:
                pass
        return Snapshot(stats, clusters, intensity)

    def close(self) -> None:
        self.hub_channel.close()
        self.carbon_channel.close()


def _phase_name(phase: int) -> str:
    return common_pb2.AppWrapperPhase.Name(phase).removeprefix("APP_WRAPPER_PHASE_").title()


def render(snapshot: Snapshot) -> Group:
    now = (
        from_timestamp(snapshot.stats.now).strftime("%Y-%m-%d %H:%M UTC")
        if snapshot.stats.HasField("now")
        else "-"
    )
    clusters = Table(title=f"Clusters (simulated time {now})", expand=False)
    for column in (
        "cluster",
        "zone",
        "gCO2/kWh now",
        "source",
        "free CPU",
        "free memory",
        "free GPU",
        "ready",
    ):
        clusters.add_column(column)
    for cluster in snapshot.clusters:
        reading = snapshot.intensity.get(cluster.zone)
        value = f"{reading.point.gco2_per_kwh:,.0f}" if reading else "?"
        source = "-"
        if reading:
            source = reading.source.provider + (" (stale)" if reading.source.stale else "")
        clusters.add_row(
            cluster.name,
            cluster.zone,
            value,
            source,
            format_cpu(cluster.free.cpu_millis),
            format_memory(cluster.free.memory_bytes),
            str(cluster.free.gpus),
            "yes" if cluster.ready else f"no {cluster.not_ready_reason}".strip(),
        )
    phases = Table(title="AppWrappers by phase")
    counts = {p.phase: p.count for p in snapshot.stats.phases}
    shown = [p for p in common_pb2.AppWrapperPhase.values() if p != 0]
    for phase in shown:
        phases.add_column(_phase_name(phase), justify="right")
    phases.add_row(*[str(counts.get(p, 0)) for p in shown])
    carbon = Table(title="Carbon so far")
    for column in ("emitted gCO2", "carbon-agnostic gCO2", "avoided gCO2", "saved"):
        carbon.add_column(column, justify="right")
    emitted, counterfactual = snapshot.stats.emitted_gco2, snapshot.stats.counterfactual_gco2
    saved = f"{100 * (1 - emitted / counterfactual):.1f}%" if counterfactual > 0 else "-"
    carbon.add_row(f"{emitted:,.1f}", f"{counterfactual:,.1f}", f"{snapshot.stats.avoided_gco2:,.1f}", saved)
    return Group(clusters, phases, carbon)
