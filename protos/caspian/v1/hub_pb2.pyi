import datetime

from caspian.v1 import common_pb2 as _common_pb2
from caspian.v1 import optimizer_pb2 as _optimizer_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WatchEventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WATCH_EVENT_TYPE_UNSPECIFIED: _ClassVar[WatchEventType]
    WATCH_EVENT_TYPE_ADDED: _ClassVar[WatchEventType]
    WATCH_EVENT_TYPE_MODIFIED: _ClassVar[WatchEventType]
    WATCH_EVENT_TYPE_DELETED: _ClassVar[WatchEventType]
    WATCH_EVENT_TYPE_BOOKMARK: _ClassVar[WatchEventType]
WATCH_EVENT_TYPE_UNSPECIFIED: WatchEventType
WATCH_EVENT_TYPE_ADDED: WatchEventType
WATCH_EVENT_TYPE_MODIFIED: WatchEventType
WATCH_EVENT_TYPE_DELETED: WatchEventType
WATCH_EVENT_TYPE_BOOKMARK: WatchEventType

class SubmitAppWrapperRequest(_message.Message):
    __slots__ = ("app_wrapper", "request_id")
    APP_WRAPPER_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    app_wrapper: _common_pb2.AppWrapper
    request_id: str
    def __init__(self, app_wrapper: _Optional[_Union[_common_pb2.AppWrapper, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class SubmitAppWrapperResponse(_message.Message):
    __slots__ = ("app_wrapper", "created")
    APP_WRAPPER_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    app_wrapper: _common_pb2.AppWrapper
    created: bool
    def __init__(self, app_wrapper: _Optional[_Union[_common_pb2.AppWrapper, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class SubmitAppWrappersRequest(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[SubmitAppWrapperRequest]
    def __init__(self, items: _Optional[_Iterable[_Union[SubmitAppWrapperRequest, _Mapping]]] = ...) -> None: ...

class SubmitResult(_message.Message):
    __slots__ = ("id", "created", "error_code", "error_message", "index")
    ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    id: str
    created: bool
    error_code: str
    error_message: str
    index: int
    def __init__(self, id: _Optional[str] = ..., created: _Optional[bool] = ..., error_code: _Optional[str] = ..., error_message: _Optional[str] = ..., index: _Optional[int] = ...) -> None: ...

class SubmitAppWrappersResponse(_message.Message):
    __slots__ = ("results", "accepted", "rejected")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[SubmitResult]
    accepted: int
    rejected: int
    def __init__(self, results: _Optional[_Iterable[_Union[SubmitResult, _Mapping]]] = ..., accepted: _Optional[int] = ..., rejected: _Optional[int] = ...) -> None: ...

class GetAppWrapperRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetAppWrapperResponse(_message.Message):
    __slots__ = ("app_wrapper",)
    APP_WRAPPER_FIELD_NUMBER: _ClassVar[int]
    app_wrapper: _common_pb2.AppWrapper
    def __init__(self, app_wrapper: _Optional[_Union[_common_pb2.AppWrapper, _Mapping]] = ...) -> None: ...

class ListAppWrappersRequest(_message.Message):
    __slots__ = ("phases", "cluster", "tenant", "page_size", "page_token")
    PHASES_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    phases: _containers.RepeatedScalarFieldContainer[_common_pb2.AppWrapperPhase]
    cluster: str
    tenant: str
    page_size: int
    page_token: str
    def __init__(self, phases: _Optional[_Iterable[_Union[_common_pb2.AppWrapperPhase, str]]] = ..., cluster: _Optional[str] = ..., tenant: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAppWrappersResponse(_message.Message):
    __slots__ = ("app_wrappers", "next_page_token", "total_size")
    APP_WRAPPERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    app_wrappers: _containers.RepeatedCompositeFieldContainer[_common_pb2.AppWrapper]
    next_page_token: str
    total_size: int
    def __init__(self, app_wrappers: _Optional[_Iterable[_Union[_common_pb2.AppWrapper, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ...) -> None: ...

class WatchAppWrappersRequest(_message.Message):
    __slots__ = ("since_revision", "phases", "tenant")
    SINCE_REVISION_FIELD_NUMBER: _ClassVar[int]
    PHASES_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    since_revision: int
    phases: _containers.RepeatedScalarFieldContainer[_common_pb2.AppWrapperPhase]
    tenant: str
    def __init__(self, since_revision: _Optional[int] = ..., phases: _Optional[_Iterable[_Union[_common_pb2.AppWrapperPhase, str]]] = ..., tenant: _Optional[str] = ...) -> None: ...

class WatchAppWrappersResponse(_message.Message):
    __slots__ = ("type", "app_wrapper", "revision")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    APP_WRAPPER_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    type: WatchEventType
    app_wrapper: _common_pb2.AppWrapper
    revision: int
    def __init__(self, type: _Optional[_Union[WatchEventType, str]] = ..., app_wrapper: _Optional[_Union[_common_pb2.AppWrapper, _Mapping]] = ..., revision: _Optional[int] = ...) -> None: ...

class CancelAppWrapperRequest(_message.Message):
    __slots__ = ("id", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    reason: str
    def __init__(self, id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CancelAppWrapperResponse(_message.Message):
    __slots__ = ("app_wrapper",)
    APP_WRAPPER_FIELD_NUMBER: _ClassVar[int]
    app_wrapper: _common_pb2.AppWrapper
    def __init__(self, app_wrapper: _Optional[_Union[_common_pb2.AppWrapper, _Mapping]] = ...) -> None: ...

class RegisterClusterRequest(_message.Message):
    __slots__ = ("cluster",)
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    cluster: _common_pb2.ClusterInfo
    def __init__(self, cluster: _Optional[_Union[_common_pb2.ClusterInfo, _Mapping]] = ...) -> None: ...

class RegisterClusterResponse(_message.Message):
    __slots__ = ("cluster",)
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    cluster: _common_pb2.ClusterInfo
    def __init__(self, cluster: _Optional[_Union[_common_pb2.ClusterInfo, _Mapping]] = ...) -> None: ...

class UpdateClusterRequest(_message.Message):
    __slots__ = ("cluster", "update_paths")
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    UPDATE_PATHS_FIELD_NUMBER: _ClassVar[int]
    cluster: _common_pb2.ClusterInfo
    update_paths: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, cluster: _Optional[_Union[_common_pb2.ClusterInfo, _Mapping]] = ..., update_paths: _Optional[_Iterable[str]] = ...) -> None: ...

class UpdateClusterResponse(_message.Message):
    __slots__ = ("cluster",)
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    cluster: _common_pb2.ClusterInfo
    def __init__(self, cluster: _Optional[_Union[_common_pb2.ClusterInfo, _Mapping]] = ...) -> None: ...

class DeregisterClusterRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeregisterClusterResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListClustersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListClustersResponse(_message.Message):
    __slots__ = ("clusters",)
    CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    clusters: _containers.RepeatedCompositeFieldContainer[_common_pb2.ClusterInfo]
    def __init__(self, clusters: _Optional[_Iterable[_Union[_common_pb2.ClusterInfo, _Mapping]]] = ...) -> None: ...

class TriggerScheduleRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CycleSummary(_message.Message):
    __slots__ = ("cycle", "started_at", "duration", "considered", "planned", "unplaced", "dispatched", "unschedulable", "solve_status", "policy", "planned_gco2", "agnostic_gco2", "gap", "carbon_stale", "carbon_blind", "fallback", "notes", "outcome")
    CYCLE_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    CONSIDERED_FIELD_NUMBER: _ClassVar[int]
    PLANNED_FIELD_NUMBER: _ClassVar[int]
    UNPLACED_FIELD_NUMBER: _ClassVar[int]
    DISPATCHED_FIELD_NUMBER: _ClassVar[int]
    UNSCHEDULABLE_FIELD_NUMBER: _ClassVar[int]
    SOLVE_STATUS_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    PLANNED_GCO2_FIELD_NUMBER: _ClassVar[int]
    AGNOSTIC_GCO2_FIELD_NUMBER: _ClassVar[int]
    GAP_FIELD_NUMBER: _ClassVar[int]
    CARBON_STALE_FIELD_NUMBER: _ClassVar[int]
    CARBON_BLIND_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    cycle: int
    started_at: _timestamp_pb2.Timestamp
    duration: _duration_pb2.Duration
    considered: int
    planned: int
    unplaced: int
    dispatched: int
    unschedulable: int
    solve_status: _optimizer_pb2.SolveStatus
    policy: _optimizer_pb2.Policy
    planned_gco2: float
    agnostic_gco2: float
    gap: float
    carbon_stale: bool
    carbon_blind: bool
    fallback: bool
    notes: _containers.RepeatedScalarFieldContainer[str]
    outcome: str
    def __init__(self, cycle: _Optional[int] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., considered: _Optional[int] = ..., planned: _Optional[int] = ..., unplaced: _Optional[int] = ..., dispatched: _Optional[int] = ..., unschedulable: _Optional[int] = ..., solve_status: _Optional[_Union[_optimizer_pb2.SolveStatus, str]] = ..., policy: _Optional[_Union[_optimizer_pb2.Policy, str]] = ..., planned_gco2: _Optional[float] = ..., agnostic_gco2: _Optional[float] = ..., gap: _Optional[float] = ..., carbon_stale: _Optional[bool] = ..., carbon_blind: _Optional[bool] = ..., fallback: _Optional[bool] = ..., notes: _Optional[_Iterable[str]] = ..., outcome: _Optional[str] = ...) -> None: ...

class TriggerScheduleResponse(_message.Message):
    __slots__ = ("summary",)
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    summary: CycleSummary
    def __init__(self, summary: _Optional[_Union[CycleSummary, _Mapping]] = ...) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PhaseCount(_message.Message):
    __slots__ = ("phase", "count")
    PHASE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    phase: _common_pb2.AppWrapperPhase
    count: int
    def __init__(self, phase: _Optional[_Union[_common_pb2.AppWrapperPhase, str]] = ..., count: _Optional[int] = ...) -> None: ...

class GetStatsResponse(_message.Message):
    __slots__ = ("phases", "app_wrappers_total", "clusters_total", "clusters_ready", "emitted_gco2", "counterfactual_gco2", "avoided_gco2", "planned_gco2", "last_cycle", "now", "leader", "replica")
    PHASES_FIELD_NUMBER: _ClassVar[int]
    APP_WRAPPERS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    CLUSTERS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    CLUSTERS_READY_FIELD_NUMBER: _ClassVar[int]
    EMITTED_GCO2_FIELD_NUMBER: _ClassVar[int]
    COUNTERFACTUAL_GCO2_FIELD_NUMBER: _ClassVar[int]
    AVOIDED_GCO2_FIELD_NUMBER: _ClassVar[int]
    PLANNED_GCO2_FIELD_NUMBER: _ClassVar[int]
    LAST_CYCLE_FIELD_NUMBER: _ClassVar[int]
    NOW_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    phases: _containers.RepeatedCompositeFieldContainer[PhaseCount]
    app_wrappers_total: int
    clusters_total: int
    clusters_ready: int
    emitted_gco2: float
    counterfactual_gco2: float
    avoided_gco2: float
    planned_gco2: float
    last_cycle: CycleSummary
    now: _timestamp_pb2.Timestamp
    leader: str
    replica: str
    def __init__(self, phases: _Optional[_Iterable[_Union[PhaseCount, _Mapping]]] = ..., app_wrappers_total: _Optional[int] = ..., clusters_total: _Optional[int] = ..., clusters_ready: _Optional[int] = ..., emitted_gco2: _Optional[float] = ..., counterfactual_gco2: _Optional[float] = ..., avoided_gco2: _Optional[float] = ..., planned_gco2: _Optional[float] = ..., last_cycle: _Optional[_Union[CycleSummary, _Mapping]] = ..., now: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., leader: _Optional[str] = ..., replica: _Optional[str] = ...) -> None: ...

class PreviewScheduleRequest(_message.Message):
    __slots__ = ("app_wrapper",)
    APP_WRAPPER_FIELD_NUMBER: _ClassVar[int]
    app_wrapper: _common_pb2.AppWrapper
    def __init__(self, app_wrapper: _Optional[_Union[_common_pb2.AppWrapper, _Mapping]] = ...) -> None: ...

class PreviewScheduleResponse(_message.Message):
    __slots__ = ("placeable", "cluster", "planned_start", "planned_gco2", "start_now_gco2", "saving_gco2", "reason", "delay", "segments", "one_piece_start", "one_piece_gco2", "interruptible_saving_gco2", "start_now_cluster")
    PLACEABLE_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    PLANNED_START_FIELD_NUMBER: _ClassVar[int]
    PLANNED_GCO2_FIELD_NUMBER: _ClassVar[int]
    START_NOW_GCO2_FIELD_NUMBER: _ClassVar[int]
    SAVING_GCO2_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DELAY_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    ONE_PIECE_START_FIELD_NUMBER: _ClassVar[int]
    ONE_PIECE_GCO2_FIELD_NUMBER: _ClassVar[int]
    INTERRUPTIBLE_SAVING_GCO2_FIELD_NUMBER: _ClassVar[int]
    START_NOW_CLUSTER_FIELD_NUMBER: _ClassVar[int]
    placeable: bool
    cluster: str
    planned_start: _timestamp_pb2.Timestamp
    planned_gco2: float
    start_now_gco2: float
    saving_gco2: float
    reason: str
    delay: _duration_pb2.Duration
    segments: _containers.RepeatedCompositeFieldContainer[_common_pb2.RunSegment]
    one_piece_start: _timestamp_pb2.Timestamp
    one_piece_gco2: float
    interruptible_saving_gco2: float
    start_now_cluster: str
    def __init__(self, placeable: _Optional[bool] = ..., cluster: _Optional[str] = ..., planned_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., planned_gco2: _Optional[float] = ..., start_now_gco2: _Optional[float] = ..., saving_gco2: _Optional[float] = ..., reason: _Optional[str] = ..., delay: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., segments: _Optional[_Iterable[_Union[_common_pb2.RunSegment, _Mapping]]] = ..., one_piece_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., one_piece_gco2: _Optional[float] = ..., interruptible_saving_gco2: _Optional[float] = ..., start_now_cluster: _Optional[str] = ...) -> None: ...
