"""In-process stand-ins for the carbon service and the dispatcher, for runs with no network: the hub's tests,
`bench/hub.py`, and anything else that drives a `Scheduler` directly. (The offline evaluation has richer
ones: a replayed trace with forecast error, a simulated dispatcher that runs Jobs on its clock.)"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from caspian.v1 import common_pb2
from services.hub.ports import ClusterProbe, DispatchResult, DispatchTarget, Forecast, IntensitySample

HOUR = 3600.0


class HourlyCarbon:
    """A CarbonPort over hourly intensities per zone (a perfect forecast): `intensity(zone, hour_start_s)`."""

    def __init__(self, intensity: Callable[[str, float], float]):
        self.intensity = intensity

    @classmethod
    def of_table(cls, table: Mapping[str, Mapping[float, float]], default: float = 300.0) -> HourlyCarbon:
        return cls(lambda zone, t: table.get(zone, {}).get(t, default))

    def _at(self, zone: str, t: float) -> float:
        return self.intensity(zone, t - t % HOUR)

    async def forecast(self, zone: str, start: datetime, slot_seconds: float, slots: int) -> Forecast:
        t0 = start.timestamp()
        values = tuple(self._at(zone, t0 + i * slot_seconds) for i in range(slots))
        return Forecast(zone, start, slot_seconds, values, provider="in-process")

    async def history(self, zone: str, start: datetime, end: datetime) -> list[IntensitySample]:
        t = start.timestamp() - start.timestamp() % HOUR
        out = []
        while t < end.timestamp():
            out.append(IntensitySample(datetime.fromtimestamp(t, UTC), HOUR, self._at(zone, t)))
            t += HOUR
        return out


class InstantDispatcher:
    """A DispatcherPort whose spokes are always ready and take every Job at once."""

    def __init__(self) -> None:
        self.dispatched: list[tuple[str, DispatchTarget]] = []
        # Every suspend (True) or resume (False) asked, in order.
        self.suspensions: list[tuple[str, bool]] = []

    async def probe(self, spokes: Sequence[str]) -> list[ClusterProbe]:
        return [ClusterProbe(name, True) for name in spokes]

    async def dispatch(
        self, app_wrapper: common_pb2.AppWrapper, target: DispatchTarget, gate_opened_at: datetime
    ) -> DispatchResult:
        self.dispatched.append((app_wrapper.id, target))
        return DispatchResult(f"job-{app_wrapper.id}", target.namespace, True)

    async def cancel(self, app_wrapper_id: str, target: DispatchTarget) -> bool:
        return True

    async def set_suspended(self, app_wrapper_id: str, target: DispatchTarget, suspend: bool) -> bool:
        self.suspensions.append((app_wrapper_id, suspend))
        return True

    async def job_events(self):
        return
        yield
