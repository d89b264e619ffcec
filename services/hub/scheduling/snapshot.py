"""Step 1, the snapshot: what one cycle plans from, taken once.

`CycleSnapshot` holds the clock time, the planning grid, every registered cluster with its readiness and free
capacity (probed through the registry), the carbon forecast per zone laid on the grid, and the active
AppWrappers as read from the store. Every later step reads it; none reads the world again.

Carbon: a forecast per zone for the grid (carbon GetForecast), saved to the hub's cache; when the carbon
service does not answer, the cache stands in (stale). A forecast older than `carbon_blind_after_seconds`, or a
zone with none at all, is unusable: when every zone is, the cycle is carbon-blind (every series flattened, so
placement ignores carbon); when only some are, those zones are planned flat at the others' mean and the rest
stays carbon-aware.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

from caspian.v1 import common_pb2
from services.common.limits import MAX_RELATIVE_SPREAD
from services.hub.clusters import ClusterView
from services.hub.grid import Grid, align
from services.hub.ports import CarbonPort
from services.hub.scheduling.expected_arrivals import DemandModel
from services.hub.scheduling.forecast_skill import ForecastSkill, measure_and_blend
from services.hub.scheduling.report import SchedulerConfig, short
from services.hub.storagefaults import store_failure_note
from services.hub.store import AppWrapperRecord, IntensityRow, Store

CACHE_KEEP_SECONDS = 35 * 86400


@dataclass
class CarbonView:
    grid: Grid
    # gCO2/kWh per slot of the grid, by zone.
    series: dict[str, list[float]]
    # The forecast's typical relative error per slot, by zone, where the carbon service gave one.
    spread: dict[str, list[float]] = field(default_factory=dict)
    stale: bool = False
    blind: bool = False
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ZoneForecast:
    zone: str
    # None: no forecast at all, not even cached.
    values: list[float] | None
    # Relative spread per slot; empty for a cached forecast or one the service gave none for.
    spread: list[float]
    age_seconds: float
    stale: bool
    note: str = ""


@dataclass
class CycleSnapshot:
    now: datetime
    grid: Grid
    clusters: dict[str, ClusterView]
    carbon: CarbonView
    records: list[AppWrapperRecord]
    # The demand forecast for work not arrived yet (scheduling/expected_arrivals.py), when it is on.
    demand: DemandModel | None = None

    @cached_property
    def now_s(self) -> float:
        return self.now.timestamp()

    @cached_property
    def ready(self) -> dict[str, ClusterView]:
        return {name: view for name, view in self.clusters.items() if view.ready}

    @cached_property
    def registered(self) -> dict[str, common_pb2.ClusterInfo]:
        return {name: view.info for name, view in self.clusters.items()}


class CarbonSnapshots:
    """The carbon part of snapshots: forecasts per zone, the hub's cache of them, and the last view taken."""

    def __init__(self, carbon: CarbonPort, store: Store, config: SchedulerConfig):
        self.carbon = carbon
        self.store = store
        self.config = config
        self.last: CarbonView | None = None
        # The forecast's measured skill per zone and lead (scheduling/forecast_skill.py), when asked for.
        self.skill = ForecastSkill()

    async def view(
        self, grid: Grid, clusters: Mapping[str, ClusterView], now: datetime, cache: bool = True
    ) -> CarbonView:
        """The forecast of every zone of `clusters` on the grid; with `cache`, saved for later cycles (and
        remembered as `last`)."""
        zones = sorted({view.info.zone for view in clusters.values()})
        forecasts = await asyncio.gather(*(self._zone(zone, grid, now, cache) for zone in zones))
        view = CarbonView(grid, {})
        known: list[float] = []
        unusable = [
            f.zone
            for f in forecasts
            if f.values is None or f.age_seconds > self.config.carbon_blind_after_seconds
        ]
        # Only when no zone has a usable forecast is the whole cycle carbon-blind. A zone without one (unknown
        # to the carbon service, or its data too old) is planned flat at the usable zones' mean: its clusters
        # are neither favoured nor avoided, and the other clusters keep their carbon-aware placement.
        view.blind = bool(zones) and len(unusable) == len(zones)
        for f in forecasts:
            if f.note:
                view.notes.append(f.note)
            if f.zone in unusable and not view.blind:
                continue
            if f.stale:
                view.stale = True
            if f.values is not None:
                view.series[f.zone] = f.values
                known.extend(f.values)
            if f.spread:
                view.spread[f.zone] = f.spread
        if unusable and not view.blind:
            mean = sum(known) / len(known) if known else 0.0
            for zone in unusable:
                view.series[zone] = [mean] * grid.slots
                view.spread.pop(zone, None)
            view.notes.append(
                f"carbon: no usable forecast for zone(s) {', '.join(unusable)}; their clusters are planned at the "
                f"other zones' mean intensity ({mean:.0f} gCO2/kWh), the rest carbon-aware"
            )
        if self.config.forecast_skill and not view.blind:
            usable = {z: v for z, v in view.series.items() if z not in unusable}
            fresh = {f.zone for f in forecasts if f.values is not None and not f.stale}
            blended, notes = await measure_and_blend(
                self.skill, self.carbon, usable, fresh, grid.start, grid.slot_seconds, now, record=cache
            )
            view.series.update(blended)
            view.notes.extend(notes)
        if view.blind:
            # Flat series: every slot and cluster look alike, so placement ignores carbon.
            view.spread.clear()
            overall = sum(known) / len(known) if known else 0.0
            for zone in zones:
                values = view.series.get(zone)
                level = sum(values) / len(values) if values else overall
                view.series[zone] = [level] * grid.slots
        if cache:
            self.last = view
        return view

    async def _zone(self, zone: str, grid: Grid, now: datetime, cache: bool) -> ZoneForecast:
        now_s = now.timestamp()
        try:
            forecast = await self.carbon.forecast(zone, grid.start, grid.slot_seconds, grid.slots)
            values = [float(v) for v in forecast.values]
            if self.config.plan_on_estimate and len(forecast.estimate) == len(values):
                values = [float(v) for v in forecast.estimate]
            if len(values) != grid.slots or not all(math.isfinite(v) and v >= 0 for v in values):
                raise ValueError(f"forecast for {zone} has {len(values)} usable values, asked {grid.slots}")
            spread = [float(s) for s in forecast.relative_spread]
            if len(spread) != grid.slots or not all(
                math.isfinite(s) and 0 <= s <= MAX_RELATIVE_SPREAD for s in spread
            ):
                spread = []  # missing or malformed: plan as if exact
            age = max(0.0, forecast.age_seconds)
            rows = [
                IntensityRow(zone, grid.start_s + i * grid.slot_seconds, grid.slot_seconds, v, now_s - age)
                for i, v in enumerate(values)
            ]
            stale = forecast.stale or age > self.config.carbon_stale_seconds
            note = f"carbon {zone}: forecast is stale ({age:.0f} s old)" if stale else ""
        except Exception as exc:  # noqa: BLE001 - fall back to the cache
            return await self._cached(zone, grid, now_s, exc)
        if cache:
            # Caching is the hub's own write: its failure is the database's, and the fresh forecast still counts.
            try:
                await self.store.save_intensities(rows, keep_after=now_s - CACHE_KEEP_SECONDS)
            except Exception as exc:  # noqa: BLE001 - a note, not a failed cycle
                failed = store_failure_note(exc, f"caching the forecast of {zone}") or (
                    f"hub database while caching the forecast of {zone}: {short(exc)}"
                )
                note = f"{note}; {failed}" if note else failed
        return ZoneForecast(zone, values, spread, age, stale, note)

    async def _cached(self, zone: str, grid: Grid, now_s: float, exc: Exception) -> ZoneForecast:
        try:
            rows = await self.store.intensities(zone, grid.start_s, grid.end_s)
        except Exception as read:  # noqa: BLE001 - the cache is the hub's own database
            note = store_failure_note(read, f"reading the cached forecast of {zone}") or short(read)
            return ZoneForecast(zone, None, [], math.inf, True, f"carbon {zone}: {short(exc)}; {note}")
        if not rows:
            return ZoneForecast(
                zone, None, [], math.inf, True, f"carbon {zone}: {short(exc)}; no cached forecast"
            )
        age = now_s - max(r.fetched_at for r in rows)
        note = f"carbon {zone}: {short(exc)}; using cached forecast ({age:.0f} s old, stale)"
        return ZoneForecast(zone, align(rows, grid), [], age, True, note)
