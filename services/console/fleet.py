"""The fleet page: clusters with zone, readiness, capacity in use and carbon state; each zone's intensity over
the last day and its forecast, with the forecast's error band where the carbon service gives one."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from html import escape

import grpc

from caspian.v1 import carbon_pb2
from caspianctl.quantities import format_memory
from services.common.timeconv import from_timestamp
from services.console import charts
from services.console.gateway import Gateway
from services.console.layout import table, when
from services.console.views import carbon_state, cluster_view, cycle_flags, point_view, seconds


@dataclass
class ZoneCarbon:
    zone: str
    reading: carbon_pb2.GetIntensityResponse | None = None
    history: carbon_pb2.GetHistoryResponse | None = None
    forecast: carbon_pb2.GetForecastResponse | None = None
    error: str = ""

    def as_json(self) -> dict:
        forecast = []
        if self.forecast is not None:
            spreads = list(self.forecast.relative_spread)
            for i, p in enumerate(self.forecast.points):
                view = point_view(p)
                if i < len(spreads) and spreads[i] > 0:
                    view["spread"] = spreads[i]
                forecast.append(view)
        return {
            "zone": self.zone,
            "state": carbon_state(self.reading),
            "now": point_view(self.reading.point) if self.reading is not None else None,
            "history": [point_view(p) for p in self.history.points] if self.history is not None else [],
            "forecast": forecast,
            "error_model": self.forecast.error_model if self.forecast is not None else "",
            "error": self.error,
        }


async def zone_carbon(
    gateway: Gateway, zone: str, now, history: timedelta, slot: timedelta, slots: int
) -> ZoneCarbon:
    result = ZoneCarbon(zone)
    calls = (
        gateway.intensity(zone),
        gateway.history(zone, now - history, now),
        gateway.forecast(zone, slot, slots),
    )
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    errors = []
    for name, outcome in zip(("reading", "history", "forecast"), outcomes, strict=True):
        if isinstance(outcome, grpc.aio.AioRpcError):
            errors.append(f"{name}: {outcome.code().name}")
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            setattr(result, name, outcome)
    result.error = "; ".join(errors)
    return result


async def all_zones(gateway: Gateway, zones: list[str], now, history: timedelta, slot: timedelta, slots: int):
    found = await asyncio.gather(*(zone_carbon(gateway, z, now, history, slot, slots) for z in zones))
    return {z.zone: z for z in found}


def _cores(millis: int) -> str:
    return f"{millis / 1000:,.1f}"


def _used(used: int, capacity: int, fmt) -> str:
    if capacity <= 0:
        return "–"
    return f"{fmt(used)} / {fmt(capacity)} <span class=muted>({100 * used / capacity:.0f} %)</span>"


def render_clusters(clusters, zones: dict[str, ZoneCarbon]) -> str:
    rows = []
    for c in clusters:
        v = cluster_view(c)
        zone = zones.get(c.zone)
        state = carbon_state(zone.reading if zone else None)
        reading = zone.reading if zone else None
        now = f"{reading.point.gco2_per_kwh:,.0f}" if reading is not None else "–"
        ready = "yes" if c.ready else f"no <span class=muted>{escape(c.not_ready_reason)}</span>"
        rows.append(
            (
                f"<b>{escape(c.name)}</b>",
                escape(c.zone or "–"),
                ready,
                _used(v["cpu_used"], v["cpu_capacity"], _cores),
                _used(v["memory_used"], v["memory_capacity"], format_memory),
                _used(v["gpus_used"], v["gpus_capacity"], str),
                f'<span class="carbon {state}" data-zone="{escape(c.zone)}">{state}</span>',
                f'<span class="intensity-now" data-zone="{escape(c.zone)}">{now}</span>',
            )
        )
    return table(
        (
            "cluster",
            "zone",
            "ready",
            "CPU cores in use",
            "memory in use",
            "GPUs in use",
            "carbon",
            "gCO2/kWh now",
        ),
        rows,
        table_id="clusters",
        empty="no clusters registered",
    )


def zone_chart(zone: ZoneCarbon, now_s: float | None) -> str:
    history = [(p.time.seconds, p.gco2_per_kwh) for p in zone.history.points] if zone.history else []
    forecast, band = [], []
    if zone.forecast is not None:
        spreads = list(zone.forecast.relative_spread)
        for i, p in enumerate(zone.forecast.points):
            t = p.time.seconds + p.duration.seconds / 2
            forecast.append((t, p.gco2_per_kwh))
            if i < len(spreads) and spreads[i] > 0:
                band.append((t, p.gco2_per_kwh * (1 - spreads[i]), p.gco2_per_kwh * (1 + spreads[i])))
    source = zone.reading.source if zone.reading is not None else None
    detail = f" · {source.provider}{' (stale)' if source.stale else ''}" if source is not None else ""
    model = (
        f" · error model {zone.forecast.error_model}" if zone.forecast and zone.forecast.error_model else ""
    )
    chart = charts.Chart(
        title=f"{zone.zone}{detail}{model}",
        unit="gCO2/kWh",
        series=[
            charts.Series("last day", history, "history"),
            charts.Series("forecast", forecast, "forecast", dashed=True),
        ],
        band=band,
        now=now_s,
    )
    note = f'<p class="error">carbon service: {escape(zone.error)}</p>' if zone.error else ""
    return f'<section class="zone" data-zone="{escape(zone.zone)}">{charts.render(chart)}{note}</section>'


def render_fleet(stats, clusters, zones: dict[str, ZoneCarbon]) -> str:
    now_s = seconds(stats, "now") if stats is not None else None
    clock = f"hub time {when(now_s)}" if now_s else "hub time unknown"
    ready = f"{stats.clusters_ready} of {stats.clusters_total} clusters ready" if stats is not None else ""
    charts_html = "".join(zone_chart(zones[z], now_s) for z in sorted(zones))
    last = ""
    if stats is not None and stats.HasField("last_cycle"):
        cycle = stats.last_cycle
        flags = cycle_flags(cycle)
        started = when(from_timestamp(cycle.started_at).timestamp())
        gap = f"{cycle.gap:.4f}" if cycle.HasField("gap") else "none"
        last = (
            f"<p>Last cycle <b>#{cycle.cycle}</b> at {started}: planned {cycle.planned}, unplaced "
            f"{cycle.unplaced}, gap {gap}{' · ' + ', '.join(flags) if flags else ''}</p>"
        )
    return (
        f'<h1>Fleet</h1><p class="muted" id="clock">{clock} · {ready}</p>{last}'
        f"{render_clusters(clusters, zones)}<h2>Grid carbon intensity per zone</h2>"
        f'<div class="zones">{charts_html}</div>'
    )
