"""The hub's view of the other three services: small port interfaces with domain types.

The scheduler and the job-status reconciler talk only to these ports. `clients.py` implements them over gRPC;
an offline evaluation implements them in-process (a replayed carbon trace, the optimizer's solve function, a
simulated dispatcher) and drives `Scheduler.tick()` on its own clock with no network. Every port method may
raise any exception for "the service did not answer"; the callers treat that as the service being down.

The optimizer port speaks the optimizer's own domain types (`services/optimizer/problem.py`: a `Problem` and
its `Options` in, a `Result` out): the optimizer owns the meaning of a placement problem, and the hub's
in-process fallback calls the same `solve()` with them. Protobuf appears only in the gRPC adapters.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from caspian.v1 import common_pb2
from services.optimizer.problem import Options, Problem, Resources, Result


class Refused(Exception):
    """The service answered, and will not do this (a name it does not know, a request it finds invalid): a
    failure of the request, not of the service."""


class DeadlinePassed(Refused):
    """The dispatcher refused a Job because the AppWrapper's deadline has passed: final, no retry can help."""


# -- carbon ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Forecast:
    """Mean intensity per slot: value i covers [start + i*slot, start + (i+1)*slot), gCO2/kWh."""

    zone: str
    start: datetime
    slot_seconds: float
    values: tuple[float, ...]
    provider: str = ""
    # The carbon service flagged its own data as stale.
    stale: bool = False
    # Age of the underlying data when it was served.
    age_seconds: float = 0.0
    # Per value: how far the forecast typically errs, as a share of it (0: known); empty: not given.
    relative_spread: tuple[float, ...] = ()
    # Per value: the carbon service's shrinkage estimate of it; empty: not given.
    estimate: tuple[float, ...] = ()


@dataclass(frozen=True)
class IntensitySample:
    """Mean intensity over [start, start + seconds), gCO2/kWh."""

    start: datetime
    seconds: float
    gco2_per_kwh: float


class CarbonPort(Protocol):
    async def forecast(self, zone: str, start: datetime, slot_seconds: float, slots: int) -> Forecast: ...

    async def history(self, zone: str, start: datetime, end: datetime) -> list[IntensitySample]:
        """Measured (or best-estimate) intensity over [start, end]."""
        ...


# -- optimizer ------------------------------------------------------------------------------------------


def demand_of(resources: common_pb2.Resources) -> Resources:
    """An AppWrapper's (or a cluster's) resources in the optimizer's domain type."""
    return Resources(resources.cpu_millis, resources.memory_bytes, resources.gpus)


class OptimizerPort(Protocol):
    async def solve(self, problem: Problem, options: Options) -> Result:
        """A plan for `problem`. Zero-valued options (mip_gap, costs) mean the optimizer's own defaults."""
        ...


# -- dispatcher -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Capacity:
    cpu_millis: int = 0
    memory_bytes: int = 0
    gpus: int = 0

    @classmethod
    def of(cls, resources: common_pb2.Resources) -> Capacity:
        return cls(resources.cpu_millis, resources.memory_bytes, resources.gpus)


@dataclass(frozen=True)
class ClusterProbe:
    cluster: str
    ready: bool
    reason: str = ""
    allocatable: Capacity | None = None
    free: Capacity | None = None


@dataclass(frozen=True)
class DispatchTarget:
    cluster: str
    kube_context: str
    namespace: str


@dataclass(frozen=True)
class DispatchResult:
    job_name: str
    namespace: str = ""
    created: bool = True


class JobState(enum.IntEnum):
    # Same numbers as caspian.v1.JobPhase.
    PENDING = 1
    RUNNING = 2
    SUCCEEDED = 3
    FAILED = 4
    UNKNOWN = 5
    DELETED = 6
    # The Job is suspended (spec.suspend): an interruptible job between segments.
    SUSPENDED = 7


@dataclass(frozen=True)
class JobStatus:
    app_wrapper_id: str
    cluster: str
    state: JobState
    job_name: str = ""
    namespace: str = ""
    reason: str = ""
    start_time: datetime | None = None
    completion_time: datetime | None = None
    observed_at: datetime | None = None
    # Interruptible Jobs: when it was last suspended (SUSPENDED events), how many times, and whether it was
    # dispatched as keeping its progress across pauses (checkpointing). start_time of a resumed Job is the
    # current segment's start (Kubernetes resets it at each resume).
    suspended_at: datetime | None = None
    suspensions: int = 0
    interruptible: bool = False
    checkpointing: bool = False


@dataclass(frozen=True)
class ClusterStatus:
    cluster: str
    ready: bool
    reason: str = ""
    observed_at: datetime | None = None


@dataclass(frozen=True)
class SnapshotEnd:
    """The dispatcher has sent the state of every Job and spoke; later events are live transitions."""


DispatcherEvent = JobStatus | ClusterStatus | SnapshotEnd


class DispatcherPort(Protocol):
    async def probe(self, spokes: Sequence[str]) -> list[ClusterProbe]:
        """Readiness and free capacity of spokes by kube context; `Refused` when one is unknown to it."""
        ...

    async def dispatch(
        self, app_wrapper: common_pb2.AppWrapper, target: DispatchTarget, gate_opened_at: datetime
    ) -> DispatchResult: ...

    async def cancel(self, app_wrapper_id: str, target: DispatchTarget) -> bool: ...

    async def set_suspended(self, app_wrapper_id: str, target: DispatchTarget, suspend: bool) -> bool:
        """Suspend (True) or resume (False) an interruptible AppWrapper's Job; idempotent. Whether it changed
        anything; `DeadlinePassed` for a resume after the deadline."""
        ...

    def job_events(self) -> AsyncIterator[DispatcherEvent]:
        """One connection's events: a snapshot ending in SnapshotEnd, then live ones until it breaks."""
        ...
