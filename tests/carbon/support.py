"""Helpers for the carbon tests: ground truth read straight from the bundled CSVs, and a running server."""

from __future__ import annotations

import asyncio
import csv
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import grpc
from prometheus_client import CollectorRegistry

from caspian.v1 import carbon_pb2_grpc
from services.common.server import GrpcServer

ROOT = Path(__file__).resolve().parents[2]
TRACES = ROOT / "data" / "carbon" / "electricitymaps"
DIRECT = "Carbon Intensity gCO₂eq/kWh (direct)"
LCA = "Carbon Intensity gCO₂eq/kWh (LCA)"


@cache
def csv_rows(zone: str) -> dict[datetime, dict[str, str]]:
    with open(TRACES / f"{zone}_2023_hourly.csv", encoding="utf-8", newline="") as fh:
        return {
            datetime.strptime(r["Datetime (UTC)"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC): r
            for r in csv.DictReader(fh)
        }


def csv_value(zone: str, hour: datetime, column: str = DIRECT) -> float:
    return float(csv_rows(zone)[hour][column])


def csv_estimated(zone: str, hour: datetime) -> bool:
    return csv_rows(zone)[hour]["Data Estimated"] == "true"


@dataclass
class Running:
    server: GrpcServer
    channel: grpc.aio.Channel
    stub: carbon_pb2_grpc.CarbonServiceStub
    registry: CollectorRegistry

    def metric(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)


async def eventually(predicate, within: float = 20.0) -> None:
    """Poll `predicate` until it holds; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached before the deadline"
        await asyncio.sleep(0.02)


# The manual clock's default: mid-hour, so every test sees a partly elapsed current hour.
T0 = datetime(2023, 3, 5, 14, 30, tzinfo=UTC)
