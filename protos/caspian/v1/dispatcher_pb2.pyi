import datetime

from caspian.v1 import common_pb2 as _common_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobPhase(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_PHASE_UNSPECIFIED: _ClassVar[JobPhase]
    JOB_PHASE_PENDING: _ClassVar[JobPhase]
    JOB_PHASE_RUNNING: _ClassVar[JobPhase]
    JOB_PHASE_SUCCEEDED: _ClassVar[JobPhase]
    JOB_PHASE_FAILED: _ClassVar[JobPhase]
    JOB_PHASE_UNKNOWN: _ClassVar[JobPhase]
    JOB_PHASE_DELETED: _ClassVar[JobPhase]
    JOB_PHASE_SUSPENDED: _ClassVar[JobPhase]
JOB_PHASE_UNSPECIFIED: JobPhase
JOB_PHASE_PENDING: JobPhase
JOB_PHASE_RUNNING: JobPhase
JOB_PHASE_SUCCEEDED: JobPhase
JOB_PHASE_FAILED: JobPhase
JOB_PHASE_UNKNOWN: JobPhase
JOB_PHASE_DELETED: JobPhase
JOB_PHASE_SUSPENDED: JobPhase

class DispatchJobRequest(_message.Message):
    __slots__ = ("app_wrapper", "cluster", "kube_context", "namespace", "gate_opened_at", "suspended", "checkpointing")
    APP_WRAPPER_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    KUBE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    GATE_OPENED_AT_FIELD_NUMBER: _ClassVar[int]
    SUSPENDED_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINTING_FIELD_NUMBER: _ClassVar[int]
    app_wrapper: _common_pb2.AppWrapper
    cluster: str
    kube_context: str
    namespace: str
    gate_opened_at: _timestamp_pb2.Timestamp
    suspended: bool
    checkpointing: bool
    def __init__(self, app_wrapper: _Optional[_Union[_common_pb2.AppWrapper, _Mapping]] = ..., cluster: _Optional[str] = ..., kube_context: _Optional[str] = ..., namespace: _Optional[str] = ..., gate_opened_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., suspended: _Optional[bool] = ..., checkpointing: _Optional[bool] = ...) -> None: ...

class DispatchJobResponse(_message.Message):
    __slots__ = ("job_name", "namespace", "cluster", "created")
    JOB_NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    job_name: str
    namespace: str
    cluster: str
    created: bool
    def __init__(self, job_name: _Optional[str] = ..., namespace: _Optional[str] = ..., cluster: _Optional[str] = ..., created: _Optional[bool] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("app_wrapper_id", "cluster", "kube_context", "namespace")
    APP_WRAPPER_ID_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    KUBE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    app_wrapper_id: str
    cluster: str
    kube_context: str
    namespace: str
    def __init__(self, app_wrapper_id: _Optional[str] = ..., cluster: _Optional[str] = ..., kube_context: _Optional[str] = ..., namespace: _Optional[str] = ...) -> None: ...

class CancelJobResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    def __init__(self, deleted: _Optional[bool] = ...) -> None: ...

class SetJobSuspendedRequest(_message.Message):
    __slots__ = ("app_wrapper_id", "cluster", "kube_context", "namespace", "suspend")
    APP_WRAPPER_ID_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    KUBE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    SUSPEND_FIELD_NUMBER: _ClassVar[int]
    app_wrapper_id: str
    cluster: str
    kube_context: str
    namespace: str
    suspend: bool
    def __init__(self, app_wrapper_id: _Optional[str] = ..., cluster: _Optional[str] = ..., kube_context: _Optional[str] = ..., namespace: _Optional[str] = ..., suspend: _Optional[bool] = ...) -> None: ...

class SetJobSuspendedResponse(_message.Message):
    __slots__ = ("job_name", "namespace", "cluster", "changed", "suspended", "suspensions")
    JOB_NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    SUSPENDED_FIELD_NUMBER: _ClassVar[int]
    SUSPENSIONS_FIELD_NUMBER: _ClassVar[int]
    job_name: str
    namespace: str
    cluster: str
    changed: bool
    suspended: bool
    suspensions: int
    def __init__(self, job_name: _Optional[str] = ..., namespace: _Optional[str] = ..., cluster: _Optional[str] = ..., changed: _Optional[bool] = ..., suspended: _Optional[bool] = ..., suspensions: _Optional[int] = ...) -> None: ...

class Spoke(_message.Message):
    __slots__ = ("cluster", "kube_context", "server")
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    KUBE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    cluster: str
    kube_context: str
    server: str
    def __init__(self, cluster: _Optional[str] = ..., kube_context: _Optional[str] = ..., server: _Optional[str] = ...) -> None: ...

class ListSpokesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListSpokesResponse(_message.Message):
    __slots__ = ("spokes",)
    SPOKES_FIELD_NUMBER: _ClassVar[int]
    spokes: _containers.RepeatedCompositeFieldContainer[Spoke]
    def __init__(self, spokes: _Optional[_Iterable[_Union[Spoke, _Mapping]]] = ...) -> None: ...

class ClusterProbe(_message.Message):
    __slots__ = ("cluster", "ready", "reason", "allocatable", "free", "probed_at", "ready_nodes", "unknown_spoke")
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ALLOCATABLE_FIELD_NUMBER: _ClassVar[int]
    FREE_FIELD_NUMBER: _ClassVar[int]
    PROBED_AT_FIELD_NUMBER: _ClassVar[int]
    READY_NODES_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_SPOKE_FIELD_NUMBER: _ClassVar[int]
    cluster: str
    ready: bool
    reason: str
    allocatable: _common_pb2.Resources
    free: _common_pb2.Resources
    probed_at: _timestamp_pb2.Timestamp
    ready_nodes: int
    unknown_spoke: bool
    def __init__(self, cluster: _Optional[str] = ..., ready: _Optional[bool] = ..., reason: _Optional[str] = ..., allocatable: _Optional[_Union[_common_pb2.Resources, _Mapping]] = ..., free: _Optional[_Union[_common_pb2.Resources, _Mapping]] = ..., probed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ready_nodes: _Optional[int] = ..., unknown_spoke: _Optional[bool] = ...) -> None: ...

class ProbeClustersRequest(_message.Message):
    __slots__ = ("clusters",)
    CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    clusters: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, clusters: _Optional[_Iterable[str]] = ...) -> None: ...

class ProbeClustersResponse(_message.Message):
    __slots__ = ("clusters",)
    CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    clusters: _containers.RepeatedCompositeFieldContainer[ClusterProbe]
    def __init__(self, clusters: _Optional[_Iterable[_Union[ClusterProbe, _Mapping]]] = ...) -> None: ...

class JobEvent(_message.Message):
    __slots__ = ("app_wrapper_id", "cluster", "namespace", "job_name", "phase", "reason", "start_time", "completion_time", "observed_at", "suspended_at", "resumed_at", "suspensions", "interruptible", "checkpointing")
    APP_WRAPPER_ID_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    JOB_NAME_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TIME_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_AT_FIELD_NUMBER: _ClassVar[int]
    SUSPENDED_AT_FIELD_NUMBER: _ClassVar[int]
    RESUMED_AT_FIELD_NUMBER: _ClassVar[int]
    SUSPENSIONS_FIELD_NUMBER: _ClassVar[int]
    INTERRUPTIBLE_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINTING_FIELD_NUMBER: _ClassVar[int]
    app_wrapper_id: str
    cluster: str
    namespace: str
    job_name: str
    phase: JobPhase
    reason: str
    start_time: _timestamp_pb2.Timestamp
    completion_time: _timestamp_pb2.Timestamp
    observed_at: _timestamp_pb2.Timestamp
    suspended_at: _timestamp_pb2.Timestamp
    resumed_at: _timestamp_pb2.Timestamp
    suspensions: int
    interruptible: bool
    checkpointing: bool
    def __init__(self, app_wrapper_id: _Optional[str] = ..., cluster: _Optional[str] = ..., namespace: _Optional[str] = ..., job_name: _Optional[str] = ..., phase: _Optional[_Union[JobPhase, str]] = ..., reason: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., completion_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., observed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., suspended_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., resumed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., suspensions: _Optional[int] = ..., interruptible: _Optional[bool] = ..., checkpointing: _Optional[bool] = ...) -> None: ...

class ClusterEvent(_message.Message):
    __slots__ = ("cluster", "ready", "reason", "observed_at")
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_AT_FIELD_NUMBER: _ClassVar[int]
    cluster: str
    ready: bool
    reason: str
    observed_at: _timestamp_pb2.Timestamp
    def __init__(self, cluster: _Optional[str] = ..., ready: _Optional[bool] = ..., reason: _Optional[str] = ..., observed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class WatchJobEventsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WatchJobEventsResponse(_message.Message):
    __slots__ = ("job", "cluster", "bookmark")
    JOB_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    BOOKMARK_FIELD_NUMBER: _ClassVar[int]
    job: JobEvent
    cluster: ClusterEvent
    bookmark: bool
    def __init__(self, job: _Optional[_Union[JobEvent, _Mapping]] = ..., cluster: _Optional[_Union[ClusterEvent, _Mapping]] = ..., bookmark: _Optional[bool] = ...) -> None: ...
