import datetime

from caspian.v1 import common_pb2 as _common_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Policy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    POLICY_UNSPECIFIED: _ClassVar[Policy]
    POLICY_CASPIAN: _ClassVar[Policy]
    POLICY_ROUND_ROBIN: _ClassVar[Policy]
    POLICY_LEAST_LOADED: _ClassVar[Policy]
    POLICY_GREEDY_CARBON: _ClassVar[Policy]
    POLICY_TEMPORAL_ONLY: _ClassVar[Policy]
    POLICY_IBM_CASPIAN: _ClassVar[Policy]
    POLICY_NAIVE_MILP: _ClassVar[Policy]
    POLICY_WAIT_AWHILE: _ClassVar[Policy]

class Solver(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SOLVER_UNSPECIFIED: _ClassVar[Solver]
    SOLVER_HIGHS: _ClassVar[Solver]
    SOLVER_CBC: _ClassVar[Solver]

class SolveStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SOLVE_STATUS_UNSPECIFIED: _ClassVar[SolveStatus]
    SOLVE_STATUS_OPTIMAL: _ClassVar[SolveStatus]
    SOLVE_STATUS_FEASIBLE: _ClassVar[SolveStatus]
    SOLVE_STATUS_INFEASIBLE: _ClassVar[SolveStatus]
    SOLVE_STATUS_NO_SOLUTION_IN_TIME: _ClassVar[SolveStatus]

class UnplacedReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UNPLACED_REASON_UNSPECIFIED: _ClassVar[UnplacedReason]
    UNPLACED_REASON_DEADLINE: _ClassVar[UnplacedReason]
    UNPLACED_REASON_CAPACITY: _ClassVar[UnplacedReason]
    UNPLACED_REASON_NO_ELIGIBLE_CLUSTER: _ClassVar[UnplacedReason]
    UNPLACED_REASON_BEYOND_HORIZON: _ClassVar[UnplacedReason]
    UNPLACED_REASON_SOLVER: _ClassVar[UnplacedReason]
    UNPLACED_REASON_INVALID: _ClassVar[UnplacedReason]
POLICY_UNSPECIFIED: Policy
POLICY_CASPIAN: Policy
POLICY_ROUND_ROBIN: Policy
POLICY_LEAST_LOADED: Policy
POLICY_GREEDY_CARBON: Policy
POLICY_TEMPORAL_ONLY: Policy
POLICY_IBM_CASPIAN: Policy
POLICY_NAIVE_MILP: Policy
POLICY_WAIT_AWHILE: Policy
SOLVER_UNSPECIFIED: Solver
SOLVER_HIGHS: Solver
SOLVER_CBC: Solver
SOLVE_STATUS_UNSPECIFIED: SolveStatus
SOLVE_STATUS_OPTIMAL: SolveStatus
SOLVE_STATUS_FEASIBLE: SolveStatus
SOLVE_STATUS_INFEASIBLE: SolveStatus
SOLVE_STATUS_NO_SOLUTION_IN_TIME: SolveStatus
UNPLACED_REASON_UNSPECIFIED: UnplacedReason
UNPLACED_REASON_DEADLINE: UnplacedReason
UNPLACED_REASON_CAPACITY: UnplacedReason
UNPLACED_REASON_NO_ELIGIBLE_CLUSTER: UnplacedReason
UNPLACED_REASON_BEYOND_HORIZON: UnplacedReason
UNPLACED_REASON_SOLVER: UnplacedReason
UNPLACED_REASON_INVALID: UnplacedReason

class TimeGrid(_message.Message):
    __slots__ = ("start", "slot", "slots")
    START_FIELD_NUMBER: _ClassVar[int]
    SLOT_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    start: _timestamp_pb2.Timestamp
    slot: _duration_pb2.Duration
    slots: int
    def __init__(self, start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., slot: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., slots: _Optional[int] = ...) -> None: ...

class SolveJob(_message.Message):
    __slots__ = ("id", "resources", "runtime", "earliest_start", "deadline", "required_clusters", "preferred_clusters", "excluded_clusters", "priority", "current_cluster", "home_cluster", "previous", "interruptible", "remaining_runtime", "pauses_taken", "needs_resume")
    ID_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    EARLIEST_START_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    PREFERRED_CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    EXCLUDED_CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    CURRENT_CLUSTER_FIELD_NUMBER: _ClassVar[int]
    HOME_CLUSTER_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    INTERRUPTIBLE_FIELD_NUMBER: _ClassVar[int]
    REMAINING_RUNTIME_FIELD_NUMBER: _ClassVar[int]
    PAUSES_TAKEN_FIELD_NUMBER: _ClassVar[int]
    NEEDS_RESUME_FIELD_NUMBER: _ClassVar[int]
    id: str
    resources: _common_pb2.Resources
    runtime: _duration_pb2.Duration
    earliest_start: _timestamp_pb2.Timestamp
    deadline: _timestamp_pb2.Timestamp
    required_clusters: _containers.RepeatedScalarFieldContainer[str]
    preferred_clusters: _containers.RepeatedScalarFieldContainer[str]
    excluded_clusters: _containers.RepeatedScalarFieldContainer[str]
    priority: int
    current_cluster: str
    home_cluster: str
    previous: PreviousPlacement
    interruptible: _common_pb2.Interruptible
    remaining_runtime: _duration_pb2.Duration
    pauses_taken: int
    needs_resume: bool
    def __init__(self, id: _Optional[str] = ..., resources: _Optional[_Union[_common_pb2.Resources, _Mapping]] = ..., runtime: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., earliest_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., required_clusters: _Optional[_Iterable[str]] = ..., preferred_clusters: _Optional[_Iterable[str]] = ..., excluded_clusters: _Optional[_Iterable[str]] = ..., priority: _Optional[int] = ..., current_cluster: _Optional[str] = ..., home_cluster: _Optional[str] = ..., previous: _Optional[_Union[PreviousPlacement, _Mapping]] = ..., interruptible: _Optional[_Union[_common_pb2.Interruptible, _Mapping]] = ..., remaining_runtime: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., pauses_taken: _Optional[int] = ..., needs_resume: _Optional[bool] = ...) -> None: ...

class PreviousPlacement(_message.Message):
    __slots__ = ("cluster", "start")
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    cluster: str
    start: _timestamp_pb2.Timestamp
    def __init__(self, cluster: _Optional[str] = ..., start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SolveCluster(_message.Message):
    __slots__ = ("name", "zone", "capacity", "power")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ZONE_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    POWER_FIELD_NUMBER: _ClassVar[int]
    name: str
    zone: str
    capacity: _common_pb2.Resources
    power: _common_pb2.PowerModel
    def __init__(self, name: _Optional[str] = ..., zone: _Optional[str] = ..., capacity: _Optional[_Union[_common_pb2.Resources, _Mapping]] = ..., power: _Optional[_Union[_common_pb2.PowerModel, _Mapping]] = ...) -> None: ...

class ClusterForecast(_message.Message):
    __slots__ = ("cluster", "gco2_per_kwh", "relative_spread")
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    GCO2_PER_KWH_FIELD_NUMBER: _ClassVar[int]
    RELATIVE_SPREAD_FIELD_NUMBER: _ClassVar[int]
    cluster: str
    gco2_per_kwh: _containers.RepeatedScalarFieldContainer[float]
    relative_spread: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, cluster: _Optional[str] = ..., gco2_per_kwh: _Optional[_Iterable[float]] = ..., relative_spread: _Optional[_Iterable[float]] = ...) -> None: ...

class Reservation(_message.Message):
    __slots__ = ("cluster", "resources", "start_slot", "end_slot", "job_id")
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    START_SLOT_FIELD_NUMBER: _ClassVar[int]
    END_SLOT_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    cluster: str
    resources: _common_pb2.Resources
    start_slot: int
    end_slot: int
    job_id: str
    def __init__(self, cluster: _Optional[str] = ..., resources: _Optional[_Union[_common_pb2.Resources, _Mapping]] = ..., start_slot: _Optional[int] = ..., end_slot: _Optional[int] = ..., job_id: _Optional[str] = ...) -> None: ...

class SolveOptions(_message.Message):
    __slots__ = ("policy", "solver", "time_limit", "migration_cost_gco2", "lateness_gco2_per_slot", "preferred_discount", "mip_gap", "risk_aversion")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    SOLVER_FIELD_NUMBER: _ClassVar[int]
    TIME_LIMIT_FIELD_NUMBER: _ClassVar[int]
    MIGRATION_COST_GCO2_FIELD_NUMBER: _ClassVar[int]
    LATENESS_GCO2_PER_SLOT_FIELD_NUMBER: _ClassVar[int]
    PREFERRED_DISCOUNT_FIELD_NUMBER: _ClassVar[int]
    MIP_GAP_FIELD_NUMBER: _ClassVar[int]
    RISK_AVERSION_FIELD_NUMBER: _ClassVar[int]
    policy: Policy
    solver: Solver
    time_limit: _duration_pb2.Duration
    migration_cost_gco2: float
    lateness_gco2_per_slot: float
    preferred_discount: float
    mip_gap: float
    risk_aversion: float
    def __init__(self, policy: _Optional[_Union[Policy, str]] = ..., solver: _Optional[_Union[Solver, str]] = ..., time_limit: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., migration_cost_gco2: _Optional[float] = ..., lateness_gco2_per_slot: _Optional[float] = ..., preferred_discount: _Optional[float] = ..., mip_gap: _Optional[float] = ..., risk_aversion: _Optional[float] = ...) -> None: ...

class SolveRequest(_message.Message):
    __slots__ = ("jobs", "clusters", "grid", "forecasts", "reservations", "options")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    GRID_FIELD_NUMBER: _ClassVar[int]
    FORECASTS_FIELD_NUMBER: _ClassVar[int]
    RESERVATIONS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[SolveJob]
    clusters: _containers.RepeatedCompositeFieldContainer[SolveCluster]
    grid: TimeGrid
    forecasts: _containers.RepeatedCompositeFieldContainer[ClusterForecast]
    reservations: _containers.RepeatedCompositeFieldContainer[Reservation]
    options: SolveOptions
    def __init__(self, jobs: _Optional[_Iterable[_Union[SolveJob, _Mapping]]] = ..., clusters: _Optional[_Iterable[_Union[SolveCluster, _Mapping]]] = ..., grid: _Optional[_Union[TimeGrid, _Mapping]] = ..., forecasts: _Optional[_Iterable[_Union[ClusterForecast, _Mapping]]] = ..., reservations: _Optional[_Iterable[_Union[Reservation, _Mapping]]] = ..., options: _Optional[_Union[SolveOptions, _Mapping]] = ...) -> None: ...

class Placement(_message.Message):
    __slots__ = ("job_id", "placed", "cluster", "start_slot", "start", "energy_wh", "gco2", "unplaced_reason", "reason", "late", "segments", "agnostic")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    PLACED_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    START_SLOT_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    ENERGY_WH_FIELD_NUMBER: _ClassVar[int]
    GCO2_FIELD_NUMBER: _ClassVar[int]
    UNPLACED_REASON_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    LATE_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    AGNOSTIC_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    placed: bool
    cluster: str
    start_slot: int
    start: _timestamp_pb2.Timestamp
    energy_wh: float
    gco2: float
    unplaced_reason: UnplacedReason
    reason: str
    late: bool
    segments: _containers.RepeatedCompositeFieldContainer[PlacedSegment]
    agnostic: AgnosticRun
    def __init__(self, job_id: _Optional[str] = ..., placed: _Optional[bool] = ..., cluster: _Optional[str] = ..., start_slot: _Optional[int] = ..., start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., energy_wh: _Optional[float] = ..., gco2: _Optional[float] = ..., unplaced_reason: _Optional[_Union[UnplacedReason, str]] = ..., reason: _Optional[str] = ..., late: _Optional[bool] = ..., segments: _Optional[_Iterable[_Union[PlacedSegment, _Mapping]]] = ..., agnostic: _Optional[_Union[AgnosticRun, _Mapping]] = ...) -> None: ...

class AgnosticRun(_message.Message):
    __slots__ = ("cluster", "start_slot", "gco2")
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    START_SLOT_FIELD_NUMBER: _ClassVar[int]
    GCO2_FIELD_NUMBER: _ClassVar[int]
    cluster: str
    start_slot: int
    gco2: float
    def __init__(self, cluster: _Optional[str] = ..., start_slot: _Optional[int] = ..., gco2: _Optional[float] = ...) -> None: ...

class PlacedSegment(_message.Message):
    __slots__ = ("start_slot", "end_slot", "start", "end", "energy_wh", "gco2")
    START_SLOT_FIELD_NUMBER: _ClassVar[int]
    END_SLOT_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    ENERGY_WH_FIELD_NUMBER: _ClassVar[int]
    GCO2_FIELD_NUMBER: _ClassVar[int]
    start_slot: int
    end_slot: int
    start: _timestamp_pb2.Timestamp
    end: _timestamp_pb2.Timestamp
    energy_wh: float
    gco2: float
    def __init__(self, start_slot: _Optional[int] = ..., end_slot: _Optional[int] = ..., start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., energy_wh: _Optional[float] = ..., gco2: _Optional[float] = ...) -> None: ...

class SolveResponse(_message.Message):
    __slots__ = ("status", "placements", "emissions_gco2", "objective_gco2", "lower_bound_gco2", "gap", "solve_wall_time", "agnostic_gco2", "policy", "solver", "message", "placed_count", "unplaced_count", "placed_weight", "placed_weight_bound")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PLACEMENTS_FIELD_NUMBER: _ClassVar[int]
    EMISSIONS_GCO2_FIELD_NUMBER: _ClassVar[int]
    OBJECTIVE_GCO2_FIELD_NUMBER: _ClassVar[int]
    LOWER_BOUND_GCO2_FIELD_NUMBER: _ClassVar[int]
    GAP_FIELD_NUMBER: _ClassVar[int]
    SOLVE_WALL_TIME_FIELD_NUMBER: _ClassVar[int]
    AGNOSTIC_GCO2_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    SOLVER_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PLACED_COUNT_FIELD_NUMBER: _ClassVar[int]
    UNPLACED_COUNT_FIELD_NUMBER: _ClassVar[int]
    PLACED_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    PLACED_WEIGHT_BOUND_FIELD_NUMBER: _ClassVar[int]
    status: SolveStatus
    placements: _containers.RepeatedCompositeFieldContainer[Placement]
    emissions_gco2: float
    objective_gco2: float
    lower_bound_gco2: float
    gap: float
    solve_wall_time: _duration_pb2.Duration
    agnostic_gco2: float
    policy: Policy
    solver: Solver
    message: str
    placed_count: int
    unplaced_count: int
    placed_weight: int
    placed_weight_bound: int
    def __init__(self, status: _Optional[_Union[SolveStatus, str]] = ..., placements: _Optional[_Iterable[_Union[Placement, _Mapping]]] = ..., emissions_gco2: _Optional[float] = ..., objective_gco2: _Optional[float] = ..., lower_bound_gco2: _Optional[float] = ..., gap: _Optional[float] = ..., solve_wall_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., agnostic_gco2: _Optional[float] = ..., policy: _Optional[_Union[Policy, str]] = ..., solver: _Optional[_Union[Solver, str]] = ..., message: _Optional[str] = ..., placed_count: _Optional[int] = ..., unplaced_count: _Optional[int] = ..., placed_weight: _Optional[int] = ..., placed_weight_bound: _Optional[int] = ...) -> None: ...

class ListPoliciesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListPoliciesResponse(_message.Message):
    __slots__ = ("policies",)
    POLICIES_FIELD_NUMBER: _ClassVar[int]
    policies: _containers.RepeatedScalarFieldContainer[Policy]
    def __init__(self, policies: _Optional[_Iterable[_Union[Policy, str]]] = ...) -> None: ...
