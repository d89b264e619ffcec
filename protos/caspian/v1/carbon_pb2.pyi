import datetime

from caspian.v1 import common_pb2 as _common_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Zone(_message.Message):
    __slots__ = ("zone", "provider", "synthetic", "detail")
    ZONE_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    SYNTHETIC_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    zone: str
    provider: str
    synthetic: bool
    detail: str
    def __init__(self, zone: _Optional[str] = ..., provider: _Optional[str] = ..., synthetic: _Optional[bool] = ..., detail: _Optional[str] = ...) -> None: ...

class ListZonesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListZonesResponse(_message.Message):
    __slots__ = ("zones",)
    ZONES_FIELD_NUMBER: _ClassVar[int]
    zones: _containers.RepeatedCompositeFieldContainer[Zone]
    def __init__(self, zones: _Optional[_Iterable[_Union[Zone, _Mapping]]] = ...) -> None: ...

class GetIntensityRequest(_message.Message):
    __slots__ = ("zone",)
    ZONE_FIELD_NUMBER: _ClassVar[int]
    zone: str
    def __init__(self, zone: _Optional[str] = ...) -> None: ...

class GetIntensityResponse(_message.Message):
    __slots__ = ("point", "source")
    POINT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    point: _common_pb2.IntensityPoint
    source: _common_pb2.DataSource
    def __init__(self, point: _Optional[_Union[_common_pb2.IntensityPoint, _Mapping]] = ..., source: _Optional[_Union[_common_pb2.DataSource, _Mapping]] = ...) -> None: ...

class GetForecastRequest(_message.Message):
    __slots__ = ("zone", "start", "slot", "slots")
    ZONE_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    SLOT_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    zone: str
    start: _timestamp_pb2.Timestamp
    slot: _duration_pb2.Duration
    slots: int
    def __init__(self, zone: _Optional[str] = ..., start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., slot: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., slots: _Optional[int] = ...) -> None: ...

class GetForecastResponse(_message.Message):
    __slots__ = ("zone", "points", "source", "error_model", "relative_spread", "estimate")
    ZONE_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MODEL_FIELD_NUMBER: _ClassVar[int]
    RELATIVE_SPREAD_FIELD_NUMBER: _ClassVar[int]
    ESTIMATE_FIELD_NUMBER: _ClassVar[int]
    zone: str
    points: _containers.RepeatedCompositeFieldContainer[_common_pb2.IntensityPoint]
    source: _common_pb2.DataSource
    error_model: str
    relative_spread: _containers.RepeatedScalarFieldContainer[float]
    estimate: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, zone: _Optional[str] = ..., points: _Optional[_Iterable[_Union[_common_pb2.IntensityPoint, _Mapping]]] = ..., source: _Optional[_Union[_common_pb2.DataSource, _Mapping]] = ..., error_model: _Optional[str] = ..., relative_spread: _Optional[_Iterable[float]] = ..., estimate: _Optional[_Iterable[float]] = ...) -> None: ...

class GetHistoryRequest(_message.Message):
    __slots__ = ("zone", "start", "end")
    ZONE_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    zone: str
    start: _timestamp_pb2.Timestamp
    end: _timestamp_pb2.Timestamp
    def __init__(self, zone: _Optional[str] = ..., start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetHistoryResponse(_message.Message):
    __slots__ = ("zone", "points", "source")
    ZONE_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    zone: str
    points: _containers.RepeatedCompositeFieldContainer[_common_pb2.IntensityPoint]
    source: _common_pb2.DataSource
    def __init__(self, zone: _Optional[str] = ..., points: _Optional[_Iterable[_Union[_common_pb2.IntensityPoint, _Mapping]]] = ..., source: _Optional[_Union[_common_pb2.DataSource, _Mapping]] = ...) -> None: ...

class WatchIntensitiesRequest(_message.Message):
    __slots__ = ("zones", "interval")
    ZONES_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    zones: _containers.RepeatedScalarFieldContainer[str]
    interval: _duration_pb2.Duration
    def __init__(self, zones: _Optional[_Iterable[str]] = ..., interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class WatchIntensitiesResponse(_message.Message):
    __slots__ = ("point", "source")
    POINT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    point: _common_pb2.IntensityPoint
    source: _common_pb2.DataSource
    def __init__(self, point: _Optional[_Union[_common_pb2.IntensityPoint, _Mapping]] = ..., source: _Optional[_Union[_common_pb2.DataSource, _Mapping]] = ...) -> None: ...
