"""Synthetic intensities: the seed's mock ranges with a seeded diurnal shape. Always labelled synthetic.

value(hour) = low + (high - low) * (0.1 + 0.7 * diurnal + 0.2 * noise), where diurnal = (1 + cos(2 pi (h - peak)
/ 24)) / 2 over the UTC hour of day h, the peak hour is drawn per (seed, zone) between 08 and 12 UTC (evening in
East Asia), and noise in [0, 1) is a hash of (seed, zone, hour). Values stay inside [low, high].
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
from datetime import datetime, timedelta

from services.carbon.model import HOUR, Reading, Series, Step, floor_time
from services.carbon.providers.base import OFFLOAD_SPAN, Provider
from services.common.clock import Clock


class SyntheticProvider(Provider):
    name = "synthetic"
    synthetic = True
    forecast_model = "synthetic"

    def __init__(self, zone: str, low: float, high: float, seed: int, clock: Clock):
        self.zone = zone
        self.low = low
        self.high = high
        self.seed = seed
        self.clock = clock
        self.peak_hour = random.Random(f"caspian-synthetic:{seed}:{zone}").uniform(8.0, 12.0)
        self.detail = (
            f"synthetic {low:g}-{high:g} gCO2/kWh, diurnal peak {self.peak_hour:.1f}h UTC, seed {seed}"
        )

    def _noise(self, hour_start: datetime) -> float:
        key = f"{self.seed}:{self.zone}:{int(hour_start.timestamp())}".encode()
        return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / 2**64

    def value_at(self, hour_start: datetime) -> float:
        h = hour_start.hour + hour_start.minute / 60
        diurnal = (1 + math.cos(2 * math.pi * (h - self.peak_hour) / 24)) / 2
        share = 0.1 + 0.7 * diurnal + 0.2 * self._noise(hour_start)
        return round(self.low + (self.high - self.low) * share, 2)

    def _step(self, hour_start: datetime, now: datetime) -> Step:
        return Step(hour_start, hour_start + HOUR, self.value_at(hour_start), True, hour_start >= now)

    async def latest(self, now: datetime) -> Reading:
        start = floor_time(now, HOUR)
        return Reading(self._step(start, now), start, self.detail)

    async def series(self, start: datetime, end: datetime, now: datetime) -> Series:
        if end - start > OFFLOAD_SPAN:
            return await asyncio.to_thread(self.series_now, start, end, now)
        return self.series_now(start, end, now)

    def series_now(self, start: datetime, end: datetime, now: datetime) -> Series:
        steps = []
        t = floor_time(start, HOUR)
        while t < end:
            step = self._step(t, now)
            steps.append(Step(max(start, t), min(end, step.end), step.value, True, step.forecast))
            t += timedelta(hours=1)
        return Series(steps, floor_time(now, HOUR), self.detail)
