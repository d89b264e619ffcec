import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AppWrapperPhase(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    APP_WRAPPER_PHASE_UNSPECIFIED: _ClassVar[AppWrapperPhase]
    APP_WRAPPER_PHASE_PENDING: _ClassVar[AppWrapperPhase]
    APP_WRAPPER_PHASE_SCHEDULED: _ClassVar[AppWrapperPhase]
    APP_WRAPPER_PHASE_DISPATCHING: _ClassVar[AppWrapperPhase]
    APP_WRAPPER_PHASE_RUNNING: _ClassVar[AppWrapperPhase]
    APP_WRAPPER_PHASE_SUCCEEDED: _ClassVar[AppWrapperPhase]
    APP_WRAPPER_PHASE_FAILED: _ClassVar[AppWrapperPhase]
    APP_WRAPPER_PHASE_CANCELLED: _ClassVar[AppWrapperPhase]
    APP_WRAPPER_PHASE_UNSCHEDULABLE: _ClassVar[AppWrapperPhase]
    APP_WRAPPER_PHASE_SUSPENDED: _ClassVar[AppWrapperPhase]

class SourceKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SOURCE_KIND_UNSPECIFIED: _ClassVar[SourceKind]
    SOURCE_KIND_MEASURED: _ClassVar[SourceKind]
    SOURCE_KIND_ESTIMATED: _ClassVar[SourceKind]
    SOURCE_KIND_FORECAST: _ClassVar[SourceKind]
    SOURCE_KIND_SYNTHETIC: _ClassVar[SourceKind]

class Aggregation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AGGREGATION_UNSPECIFIED: _ClassVar[Aggregation]
    AGGREGATION_POINT: _ClassVar[Aggregation]
    AGGREGATION_MEAN: _ClassVar[Aggregation]
APP_WRAPPER_PHASE_UNSPECIFIED: AppWrapperPhase
APP_WRAPPER_PHASE_PENDING: AppWrapperPhase
APP_WRAPPER_PHASE_SCHEDULED: AppWrapperPhase
APP_WRAPPER_PHASE_DISPATCHING: AppWrapperPhase
APP_WRAPPER_PHASE_RUNNING: AppWrapperPhase
APP_WRAPPER_PHASE_SUCCEEDED: AppWrapperPhase
APP_WRAPPER_PHASE_FAILED: AppWrapperPhase
APP_WRAPPER_PHASE_CANCELLED: AppWrapperPhase
APP_WRAPPER_PHASE_UNSCHEDULABLE: AppWrapperPhase
APP_WRAPPER_PHASE_SUSPENDED: AppWrapperPhase
SOURCE_KIND_UNSPECIFIED: SourceKind
SOURCE_KIND_MEASURED: SourceKind
SOURCE_KIND_ESTIMATED: SourceKind
SOURCE_KIND_FORECAST: SourceKind
SOURCE_KIND_SYNTHETIC: SourceKind
AGGREGATION_UNSPECIFIED: Aggregation
AGGREGATION_POINT: Aggregation
AGGREGATION_MEAN: Aggregation

class Resources(_message.Message):
    __slots__ = ("cpu_millis", "memory_bytes", "gpus")
    CPU_MILLIS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    cpu_millis: int
    memory_bytes: int
    gpus: int
    def __init__(self, cpu_millis: _Optional[int] = ..., memory_bytes: _Optional[int] = ..., gpus: _Optional[int] = ...) -> None: ...

class PowerModel(_message.Message):
    __slots__ = ("idle_watts", "peak_watts", "watts_per_core", "watts_per_gpu", "watts_per_gib", "pue")
    IDLE_WATTS_FIELD_NUMBER: _ClassVar[int]
    PEAK_WATTS_FIELD_NUMBER: _ClassVar[int]
    WATTS_PER_CORE_FIELD_NUMBER: _ClassVar[int]
    WATTS_PER_GPU_FIELD_NUMBER: _ClassVar[int]
    WATTS_PER_GIB_FIELD_NUMBER: _ClassVar[int]
    PUE_FIELD_NUMBER: _ClassVar[int]
    idle_watts: float
    peak_watts: float
    watts_per_core: float
    watts_per_gpu: float
    watts_per_gib: float
    pue: float
    def __init__(self, idle_watts: _Optional[float] = ..., peak_watts: _Optional[float] = ..., watts_per_core: _Optional[float] = ..., watts_per_gpu: _Optional[float] = ..., watts_per_gib: _Optional[float] = ..., pue: _Optional[float] = ...) -> None: ...

class EnvVar(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class JobTemplate(_message.Message):
    __slots__ = ("image", "command", "args", "env", "resources", "expected_runtime")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_RUNTIME_FIELD_NUMBER: _ClassVar[int]
    image: str
    command: _containers.RepeatedScalarFieldContainer[str]
    args: _containers.RepeatedScalarFieldContainer[str]
    env: _containers.RepeatedCompositeFieldContainer[EnvVar]
    resources: Resources
    expected_runtime: _duration_pb2.Duration
    def __init__(self, image: _Optional[str] = ..., command: _Optional[_Iterable[str]] = ..., args: _Optional[_Iterable[str]] = ..., env: _Optional[_Iterable[_Union[EnvVar, _Mapping]]] = ..., resources: _Optional[_Union[Resources, _Mapping]] = ..., expected_runtime: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class CarbonAccount(_message.Message):
    __slots__ = ("planned_gco2", "actual_gco2", "counterfactual_gco2", "energy_wh", "spatial_saving_gco2", "temporal_saving_gco2")
    PLANNED_GCO2_FIELD_NUMBER: _ClassVar[int]
    ACTUAL_GCO2_FIELD_NUMBER: _ClassVar[int]
    COUNTERFACTUAL_GCO2_FIELD_NUMBER: _ClassVar[int]
    ENERGY_WH_FIELD_NUMBER: _ClassVar[int]
    SPATIAL_SAVING_GCO2_FIELD_NUMBER: _ClassVar[int]
    TEMPORAL_SAVING_GCO2_FIELD_NUMBER: _ClassVar[int]
    planned_gco2: float
    actual_gco2: float
    counterfactual_gco2: float
    energy_wh: float
    spatial_saving_gco2: float
    temporal_saving_gco2: float
    def __init__(self, planned_gco2: _Optional[float] = ..., actual_gco2: _Optional[float] = ..., counterfactual_gco2: _Optional[float] = ..., energy_wh: _Optional[float] = ..., spatial_saving_gco2: _Optional[float] = ..., temporal_saving_gco2: _Optional[float] = ...) -> None: ...

class AppWrapperStatus(_message.Message):
    __slots__ = ("phase", "target_cluster", "planned_start", "reason", "carbon", "started_at", "finished_at", "job_name", "dispatch_attempts", "cycle", "planned_segments", "run_segments", "progress", "pauses", "baseline_cluster", "baseline_start")
    PHASE_FIELD_NUMBER: _ClassVar[int]
    TARGET_CLUSTER_FIELD_NUMBER: _ClassVar[int]
    PLANNED_START_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CARBON_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    JOB_NAME_FIELD_NUMBER: _ClassVar[int]
    DISPATCH_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    CYCLE_FIELD_NUMBER: _ClassVar[int]
    PLANNED_SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    RUN_SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    PAUSES_FIELD_NUMBER: _ClassVar[int]
    BASELINE_CLUSTER_FIELD_NUMBER: _ClassVar[int]
    BASELINE_START_FIELD_NUMBER: _ClassVar[int]
    phase: AppWrapperPhase
    target_cluster: str
    planned_start: _timestamp_pb2.Timestamp
    reason: str
    carbon: CarbonAccount
    started_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    job_name: str
    dispatch_attempts: int
    cycle: int
    planned_segments: _containers.RepeatedCompositeFieldContainer[RunSegment]
    run_segments: _containers.RepeatedCompositeFieldContainer[RunSegment]
    progress: _duration_pb2.Duration
    pauses: int
    baseline_cluster: str
    baseline_start: _timestamp_pb2.Timestamp
    def __init__(self, phase: _Optional[_Union[AppWrapperPhase, str]] = ..., target_cluster: _Optional[str] = ..., planned_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ..., carbon: _Optional[_Union[CarbonAccount, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., job_name: _Optional[str] = ..., dispatch_attempts: _Optional[int] = ..., cycle: _Optional[int] = ..., planned_segments: _Optional[_Iterable[_Union[RunSegment, _Mapping]]] = ..., run_segments: _Optional[_Iterable[_Union[RunSegment, _Mapping]]] = ..., progress: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., pauses: _Optional[int] = ..., baseline_cluster: _Optional[str] = ..., baseline_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RunSegment(_message.Message):
    __slots__ = ("cluster", "start", "end")
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    cluster: str
    start: _timestamp_pb2.Timestamp
    end: _timestamp_pb2.Timestamp
    def __init__(self, cluster: _Optional[str] = ..., start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Interruptible(_message.Message):
    __slots__ = ("resume_overhead", "min_segment", "max_pauses")
    RESUME_OVERHEAD_FIELD_NUMBER: _ClassVar[int]
    MIN_SEGMENT_FIELD_NUMBER: _ClassVar[int]
    MAX_PAUSES_FIELD_NUMBER: _ClassVar[int]
    resume_overhead: _duration_pb2.Duration
    min_segment: _duration_pb2.Duration
    max_pauses: int
    def __init__(self, resume_overhead: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., min_segment: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_pauses: _Optional[int] = ...) -> None: ...

class AppWrapper(_message.Message):
    __slots__ = ("id", "name", "tenant", "namespace", "template", "earliest_start", "deadline", "required_clusters", "preferred_clusters", "excluded_clusters", "priority", "labels", "status", "revision", "created_at", "updated_at", "interruptible")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    EARLIEST_START_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    PREFERRED_CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    EXCLUDED_CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    INTERRUPTIBLE_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    tenant: str
    namespace: str
    template: JobTemplate
    earliest_start: _timestamp_pb2.Timestamp
    deadline: _timestamp_pb2.Timestamp
    required_clusters: _containers.RepeatedScalarFieldContainer[str]
    preferred_clusters: _containers.RepeatedScalarFieldContainer[str]
    excluded_clusters: _containers.RepeatedScalarFieldContainer[str]
    priority: int
    labels: _containers.ScalarMap[str, str]
    status: AppWrapperStatus
    revision: int
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    interruptible: Interruptible
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., tenant: _Optional[str] = ..., namespace: _Optional[str] = ..., template: _Optional[_Union[JobTemplate, _Mapping]] = ..., earliest_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., required_clusters: _Optional[_Iterable[str]] = ..., preferred_clusters: _Optional[_Iterable[str]] = ..., excluded_clusters: _Optional[_Iterable[str]] = ..., priority: _Optional[int] = ..., labels: _Optional[_Mapping[str, str]] = ..., status: _Optional[_Union[AppWrapperStatus, _Mapping]] = ..., revision: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., interruptible: _Optional[_Union[Interruptible, _Mapping]] = ...) -> None: ...

class ClusterInfo(_message.Message):
    __slots__ = ("name", "zone", "kube_context", "job_namespace", "capacity", "free", "power", "ready", "not_ready_reason", "last_probe", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    ZONE_FIELD_NUMBER: _ClassVar[int]
    KUBE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    JOB_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    FREE_FIELD_NUMBER: _ClassVar[int]
    POWER_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    NOT_READY_REASON_FIELD_NUMBER: _ClassVar[int]
    LAST_PROBE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    name: str
    zone: str
    kube_context: str
    job_namespace: str
    capacity: Resources
    free: Resources
    power: PowerModel
    ready: bool
    not_ready_reason: str
    last_probe: _timestamp_pb2.Timestamp
    labels: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., zone: _Optional[str] = ..., kube_context: _Optional[str] = ..., job_namespace: _Optional[str] = ..., capacity: _Optional[_Union[Resources, _Mapping]] = ..., free: _Optional[_Union[Resources, _Mapping]] = ..., power: _Optional[_Union[PowerModel, _Mapping]] = ..., ready: _Optional[bool] = ..., not_ready_reason: _Optional[str] = ..., last_probe: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class DataSource(_message.Message):
    __slots__ = ("provider", "kind", "synthetic", "stale", "age", "detail")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SYNTHETIC_FIELD_NUMBER: _ClassVar[int]
    STALE_FIELD_NUMBER: _ClassVar[int]
    AGE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    provider: str
    kind: SourceKind
    synthetic: bool
    stale: bool
    age: _duration_pb2.Duration
    detail: str
    def __init__(self, provider: _Optional[str] = ..., kind: _Optional[_Union[SourceKind, str]] = ..., synthetic: _Optional[bool] = ..., stale: _Optional[bool] = ..., age: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., detail: _Optional[str] = ...) -> None: ...

class IntensityPoint(_message.Message):
    __slots__ = ("zone", "time", "duration", "gco2_per_kwh", "aggregation", "estimated")
    ZONE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    GCO2_PER_KWH_FIELD_NUMBER: _ClassVar[int]
    AGGREGATION_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_FIELD_NUMBER: _ClassVar[int]
    zone: str
    time: _timestamp_pb2.Timestamp
    duration: _duration_pb2.Duration
    gco2_per_kwh: float
    aggregation: Aggregation
    estimated: bool
    def __init__(self, zone: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., gco2_per_kwh: _Optional[float] = ..., aggregation: _Optional[_Union[Aggregation, str]] = ..., estimated: _Optional[bool] = ...) -> None: ...
