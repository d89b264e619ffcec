"""The optimizer's domain: one placement problem and its answer, free of gRPC and of any solver.

Time grid (shared across CASPIAN): slot i covers [grid.start + i*slot, grid.start + (i+1)*slot). A job occupies
ceil(runtime / slot) slots from its start slot, starts at or after its earliest start (the first slot boundary at
or after it) and ends (start + runtime) at or before its deadline.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from services.common.energy import Power


class Policy(enum.Enum):
    CASPIAN = "caspian"
    ROUND_ROBIN = "round_robin"
    LEAST_LOADED = "least_loaded"
    GREEDY_CARBON = "greedy_carbon"
    TEMPORAL_ONLY = "temporal_only"
    IBM_CASPIAN = "ibm_caspian"
    NAIVE_MILP = "naive_milp"
    # GAIA's "Wait AWhile": the home cluster's lowest-carbon slots before the deadline (in segments when the job
    # is interruptible, in one piece otherwise).
    WAIT_AWHILE = "wait_awhile"


class Solver(enum.Enum):
    HIGHS = "highs"
    CBC = "cbc"


class Status(enum.Enum):
    OPTIMAL = "optimal"
    # The time limit was hit; the best solution found is returned.
    FEASIBLE = "feasible"
    INFEASIBLE = "infeasible"
    NO_SOLUTION_IN_TIME = "no_solution_in_time"


class UnplacedReason(enum.Enum):
    DEADLINE = "deadline"
    CAPACITY = "capacity"
    NO_ELIGIBLE_CLUSTER = "no_eligible_cluster"
    BEYOND_HORIZON = "beyond_horizon"
    SOLVER = "solver"
    # The job breaks the job rule (services/common/jobrules.py): refused alone, never solved.
    INVALID = "invalid"


@dataclass(frozen=True)
class Resources:
    cpu_millis: int = 0
    memory_bytes: int = 0
    gpus: int = 0

    def as_tuple(self) -> tuple[int, int, int]:
        return (self.cpu_millis, self.memory_bytes, self.gpus)


@dataclass(frozen=True)
class Interruptible:
    """The job may pause and resume (it checkpoints): segments on one cluster instead of one piece."""

    # Run time each resume spends restoring the checkpoint, once per segment after the first.
    resume_overhead: timedelta = timedelta(0)
    # The shortest segment, overhead included; zero means one slot.
    min_segment: timedelta = timedelta(0)
    # At most this many pauses in all (pauses_taken included); None means no limit, 0 one piece.
    max_pauses: int | None = None


@dataclass(frozen=True)
class Job:
    id: str
    resources: Resources
    runtime: timedelta
    earliest_start: datetime | None = None
    deadline: datetime | None = None
    required_clusters: tuple[str, ...] = ()
    preferred_clusters: tuple[str, ...] = ()
    excluded_clusters: tuple[str, ...] = ()
    priority: int = 0
    # The cluster of the current plan, if any: moving away costs the migration cost.
    current_cluster: str = ""
    # Home cluster of the temporal-only baseline; empty means the first allowed cluster.
    home_cluster: str = ""
    # Where the previous plan put the job: a warm start for the search, never a constraint. Ignored when the
    # start is off this grid, outside the job's window, or the cluster has no room.
    previous_cluster: str = ""
    previous_start: datetime | None = None
    # Set: the job may run in segments (CASPIAN and Wait AWhile use it; the other baselines run it in one piece).
    interruptible: Interruptible | None = None
    # Useful run time still to do; None means `runtime`.
    remaining_runtime: timedelta | None = None
    # Pauses already taken, counted against interruptible.max_pauses.
    pauses_taken: int = 0
    # The job has progress and is paused: its first segment pays resume_overhead too.
    needs_resume: bool = False


@dataclass(frozen=True)
class Segment:
    """Run slots [start_slot, end_slot) of a placement in segments; overheads are inside. `end` is end_slot's
    start, except in the last segment: there the work completes within its last slot, and `end` is then."""

    start_slot: int
    end_slot: int
    start: datetime
    end: datetime
    energy_wh: float = 0.0
    gco2: float = 0.0


@dataclass(frozen=True)
class Cluster:
    name: str
    zone: str
    capacity: Resources
    power: Power = field(default_factory=Power)


@dataclass(frozen=True)
class Grid:
    start: datetime
    slot: timedelta
    slots: int

    def slot_start(self, index: int) -> datetime:
        return self.start + index * self.slot


@dataclass(frozen=True)
class Reservation:
    """Capacity already taken (e.g. by a running job) on `cluster` over slots [start_slot, end_slot)."""

    cluster: str
    resources: Resources
    start_slot: int
    end_slot: int
    job_id: str = ""


@dataclass(frozen=True)
class Forecast:
    """One carbon intensity (gCO2/kWh) per slot of the grid, for one cluster."""

    cluster: str
    gco2_per_kwh: tuple[float, ...]
    # Per slot: the forecast's typical relative error (0 = exact); empty = every slot exact.
    relative_spread: tuple[float, ...] = ()


@dataclass(frozen=True)
class Problem:
    jobs: tuple[Job, ...]
    clusters: tuple[Cluster, ...]
    grid: Grid
    forecasts: tuple[Forecast, ...]
    reservations: tuple[Reservation, ...] = ()


@dataclass(frozen=True)
class Options:
    policy: Policy = Policy.CASPIAN
    solver: Solver = Solver.HIGHS
    # Wall-clock limit of the whole solve, in seconds.
    time_limit_s: float = 30.0
    migration_cost_gco2: float = 1.0
    lateness_gco2_per_slot: float = 0.001
    preferred_discount: float = 0.05
    # Relative gap at which a solve may stop and call its answer optimal.
    mip_gap: float = 0.01
    # Decisions weigh a slot at forecast x (1 + risk_aversion x relative_spread); reports use the forecast.
    risk_aversion: float = 0.0


@dataclass(frozen=True)
class AgnosticRun:
    """A job's run in the carbon-agnostic baseline (earliest start, least-loaded cluster), in one piece."""

    cluster: str
    start_slot: int
    gco2: float


@dataclass(frozen=True)
class Placement:
    job_id: str
    placed: bool
    cluster: str = ""
    start_slot: int = -1
    start: datetime | None = None
    energy_wh: float = 0.0
    gco2: float = 0.0
    reason: UnplacedReason | None = None
    detail: str = ""
    # Ends after the job's deadline (soft-deadline policies only).
    late: bool = False
    # An interruptible job placed in segments, in time order (start_slot/start are the first's; energy_wh and
    # gco2 the sums); empty for a placement in one piece.
    segments: tuple[Segment, ...] = ()
    # The job's run in the carbon-agnostic baseline of the same problem, placed by this policy or not; None
    # where the baseline leaves it out or was not computed. Result.agnostic_gco2 is the sum of these.
    agnostic: AgnosticRun | None = None


@dataclass(frozen=True)
class Result:
    status: Status
    placements: tuple[Placement, ...]
    # Emissions of the placed jobs, gCO2.
    emissions_gco2: float
    # The minimised objective of the placed jobs: emissions with preference discount, migration and lateness.
    objective_gco2: float
    # A true lower bound on the objective of every plan placing at least `placed_weight`, so never above the
    # lexicographic optimum's (most weight placed, then least objective). NaN when there is no plan.
    lower_bound_gco2: float
    # (objective - bound) / max(|objective|, 1e-9); NaN when there is no plan.
    gap: float
    wall_seconds: float
    # Emissions of the same jobs under the carbon-agnostic baseline (earliest start, least loaded).
    agnostic_gco2: float
    policy: Policy
    solver: Solver
    message: str = ""
    # Priority weight of the placed jobs (1 + priority each).
    placed_weight: int = 0
    # A proven upper bound on the weight any feasible plan places (placed_weight equal to it proves that no
    # plan places more); None when the policy proves none.
    placed_weight_bound: int | None = None

    @property
    def has_bound(self) -> bool:
        return not math.isnan(self.lower_bound_gco2)

    @property
    def placed_count(self) -> int:
        return sum(1 for p in self.placements if p.placed)

    @property
    def unplaced_count(self) -> int:
        return sum(1 for p in self.placements if not p.placed)


def relative_gap(objective: float, bound: float) -> float:
    """(objective - bound) / max(|objective|, 1e-9), never below zero."""
    return max(0.0, objective - bound) / max(abs(objective), 1e-9)
