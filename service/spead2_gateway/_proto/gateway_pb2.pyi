import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StreamKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STREAM_KIND_UNSPECIFIED: _ClassVar[StreamKind]
    STREAM_KIND_RECEIVE: _ClassVar[StreamKind]
    STREAM_KIND_SEND: _ClassVar[StreamKind]
STREAM_KIND_UNSPECIFIED: StreamKind
STREAM_KIND_RECEIVE: StreamKind
STREAM_KIND_SEND: StreamKind

class FormatField(_message.Message):
    __slots__ = ("code", "bits")
    CODE_FIELD_NUMBER: _ClassVar[int]
    BITS_FIELD_NUMBER: _ClassVar[int]
    code: str
    bits: int
    def __init__(self, code: _Optional[str] = ..., bits: _Optional[int] = ...) -> None: ...

class Descriptor(_message.Message):
    __slots__ = ("id", "name", "description", "shape", "dtype", "format", "fortran_order")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    FORTRAN_ORDER_FIELD_NUMBER: _ClassVar[int]
    id: int
    name: str
    description: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    dtype: str
    format: _containers.RepeatedCompositeFieldContainer[FormatField]
    fortran_order: bool
    def __init__(self, id: _Optional[int] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., dtype: _Optional[str] = ..., format: _Optional[_Iterable[_Union[FormatField, _Mapping]]] = ..., fortran_order: _Optional[bool] = ...) -> None: ...

class Item(_message.Message):
    __slots__ = ("id", "name", "dtype", "shape", "fortran_order", "format", "offset", "size", "data")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    FORTRAN_ORDER_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    id: int
    name: str
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    fortran_order: bool
    format: _containers.RepeatedCompositeFieldContainer[FormatField]
    offset: int
    size: int
    data: bytes
    def __init__(self, id: _Optional[int] = ..., name: _Optional[str] = ..., dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., fortran_order: _Optional[bool] = ..., format: _Optional[_Iterable[_Union[FormatField, _Mapping]]] = ..., offset: _Optional[int] = ..., size: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class Heap(_message.Message):
    __slots__ = ("stream", "cnt", "sequence", "dropped", "received", "incomplete", "start_of_stream", "end_of_stream", "heap_length", "received_length", "fragment", "fragments", "padding", "items")
    STREAM_FIELD_NUMBER: _ClassVar[int]
    CNT_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_FIELD_NUMBER: _ClassVar[int]
    INCOMPLETE_FIELD_NUMBER: _ClassVar[int]
    START_OF_STREAM_FIELD_NUMBER: _ClassVar[int]
    END_OF_STREAM_FIELD_NUMBER: _ClassVar[int]
    HEAP_LENGTH_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_LENGTH_FIELD_NUMBER: _ClassVar[int]
    FRAGMENT_FIELD_NUMBER: _ClassVar[int]
    FRAGMENTS_FIELD_NUMBER: _ClassVar[int]
    PADDING_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    stream: str
    cnt: int
    sequence: int
    dropped: int
    received: _timestamp_pb2.Timestamp
    incomplete: bool
    start_of_stream: bool
    end_of_stream: bool
    heap_length: int
    received_length: int
    fragment: int
    fragments: int
    padding: bytes
    items: _containers.RepeatedCompositeFieldContainer[Item]
    def __init__(self, stream: _Optional[str] = ..., cnt: _Optional[int] = ..., sequence: _Optional[int] = ..., dropped: _Optional[int] = ..., received: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., incomplete: _Optional[bool] = ..., start_of_stream: _Optional[bool] = ..., end_of_stream: _Optional[bool] = ..., heap_length: _Optional[int] = ..., received_length: _Optional[int] = ..., fragment: _Optional[int] = ..., fragments: _Optional[int] = ..., padding: _Optional[bytes] = ..., items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("stream", "item_names", "item_ids", "every_nth", "include_incomplete", "queue_depth")
    STREAM_FIELD_NUMBER: _ClassVar[int]
    ITEM_NAMES_FIELD_NUMBER: _ClassVar[int]
    ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    EVERY_NTH_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_INCOMPLETE_FIELD_NUMBER: _ClassVar[int]
    QUEUE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    stream: str
    item_names: _containers.RepeatedScalarFieldContainer[str]
    item_ids: _containers.RepeatedScalarFieldContainer[int]
    every_nth: int
    include_incomplete: bool
    queue_depth: int
    def __init__(self, stream: _Optional[str] = ..., item_names: _Optional[_Iterable[str]] = ..., item_ids: _Optional[_Iterable[int]] = ..., every_nth: _Optional[int] = ..., include_incomplete: _Optional[bool] = ..., queue_depth: _Optional[int] = ...) -> None: ...

class StreamInfo(_message.Message):
    __slots__ = ("name", "kind", "transport", "endpoint", "state", "subscribers")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TRANSPORT_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBERS_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: StreamKind
    transport: str
    endpoint: str
    state: str
    subscribers: int
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[_Union[StreamKind, str]] = ..., transport: _Optional[str] = ..., endpoint: _Optional[str] = ..., state: _Optional[str] = ..., subscribers: _Optional[int] = ...) -> None: ...

class ListStreamsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListStreamsResponse(_message.Message):
    __slots__ = ("streams",)
    STREAMS_FIELD_NUMBER: _ClassVar[int]
    streams: _containers.RepeatedCompositeFieldContainer[StreamInfo]
    def __init__(self, streams: _Optional[_Iterable[_Union[StreamInfo, _Mapping]]] = ...) -> None: ...

class GetStreamRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class StreamDetail(_message.Message):
    __slots__ = ("info", "config", "descriptors", "stats")
    INFO_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTORS_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    info: StreamInfo
    config: _struct_pb2.Struct
    descriptors: _containers.RepeatedCompositeFieldContainer[Descriptor]
    stats: StreamStats
    def __init__(self, info: _Optional[_Union[StreamInfo, _Mapping]] = ..., config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., descriptors: _Optional[_Iterable[_Union[Descriptor, _Mapping]]] = ..., stats: _Optional[_Union[StreamStats, _Mapping]] = ...) -> None: ...

class SubscriberStats(_message.Message):
    __slots__ = ("id", "queued_heaps", "queued_bytes", "queue_depth", "delivered_heaps", "dropped_heaps", "delivered_bytes")
    ID_FIELD_NUMBER: _ClassVar[int]
    QUEUED_HEAPS_FIELD_NUMBER: _ClassVar[int]
    QUEUED_BYTES_FIELD_NUMBER: _ClassVar[int]
    QUEUE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_HEAPS_FIELD_NUMBER: _ClassVar[int]
    DROPPED_HEAPS_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_BYTES_FIELD_NUMBER: _ClassVar[int]
    id: int
    queued_heaps: int
    queued_bytes: int
    queue_depth: int
    delivered_heaps: int
    dropped_heaps: int
    delivered_bytes: int
    def __init__(self, id: _Optional[int] = ..., queued_heaps: _Optional[int] = ..., queued_bytes: _Optional[int] = ..., queue_depth: _Optional[int] = ..., delivered_heaps: _Optional[int] = ..., dropped_heaps: _Optional[int] = ..., delivered_bytes: _Optional[int] = ...) -> None: ...

class StreamStats(_message.Message):
    __slots__ = ("stream", "kind", "counters", "drops", "ring_depth", "ring_capacity", "ring_high_water", "memory_pool", "published_heaps", "subscriber_dropped_heaps", "subscribers", "restarts")
    class CountersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class DropsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class MemoryPoolEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    STREAM_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    DROPS_FIELD_NUMBER: _ClassVar[int]
    RING_DEPTH_FIELD_NUMBER: _ClassVar[int]
    RING_CAPACITY_FIELD_NUMBER: _ClassVar[int]
    RING_HIGH_WATER_FIELD_NUMBER: _ClassVar[int]
    MEMORY_POOL_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_HEAPS_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_DROPPED_HEAPS_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBERS_FIELD_NUMBER: _ClassVar[int]
    RESTARTS_FIELD_NUMBER: _ClassVar[int]
    stream: str
    kind: StreamKind
    counters: _containers.ScalarMap[str, int]
    drops: _containers.ScalarMap[str, int]
    ring_depth: int
    ring_capacity: int
    ring_high_water: int
    memory_pool: _containers.ScalarMap[str, int]
    published_heaps: int
    subscriber_dropped_heaps: int
    subscribers: _containers.RepeatedCompositeFieldContainer[SubscriberStats]
    restarts: int
    def __init__(self, stream: _Optional[str] = ..., kind: _Optional[_Union[StreamKind, str]] = ..., counters: _Optional[_Mapping[str, int]] = ..., drops: _Optional[_Mapping[str, int]] = ..., ring_depth: _Optional[int] = ..., ring_capacity: _Optional[int] = ..., ring_high_water: _Optional[int] = ..., memory_pool: _Optional[_Mapping[str, int]] = ..., published_heaps: _Optional[int] = ..., subscriber_dropped_heaps: _Optional[int] = ..., subscribers: _Optional[_Iterable[_Union[SubscriberStats, _Mapping]]] = ..., restarts: _Optional[int] = ...) -> None: ...

class WatchStatsRequest(_message.Message):
    __slots__ = ("streams", "interval_seconds")
    STREAMS_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    streams: _containers.RepeatedScalarFieldContainer[str]
    interval_seconds: float
    def __init__(self, streams: _Optional[_Iterable[str]] = ..., interval_seconds: _Optional[float] = ...) -> None: ...

class StatsUpdate(_message.Message):
    __slots__ = ("time", "streams")
    TIME_FIELD_NUMBER: _ClassVar[int]
    STREAMS_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    streams: _containers.RepeatedCompositeFieldContainer[StreamStats]
    def __init__(self, time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., streams: _Optional[_Iterable[_Union[StreamStats, _Mapping]]] = ...) -> None: ...

class SendRequest(_message.Message):
    __slots__ = ("stream", "start_of_stream", "end_of_stream", "descriptors", "cnt", "items")
    STREAM_FIELD_NUMBER: _ClassVar[int]
    START_OF_STREAM_FIELD_NUMBER: _ClassVar[int]
    END_OF_STREAM_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTORS_FIELD_NUMBER: _ClassVar[int]
    CNT_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    stream: str
    start_of_stream: bool
    end_of_stream: bool
    descriptors: _containers.RepeatedCompositeFieldContainer[Descriptor]
    cnt: int
    items: _containers.RepeatedCompositeFieldContainer[Item]
    def __init__(self, stream: _Optional[str] = ..., start_of_stream: _Optional[bool] = ..., end_of_stream: _Optional[bool] = ..., descriptors: _Optional[_Iterable[_Union[Descriptor, _Mapping]]] = ..., cnt: _Optional[int] = ..., items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ...) -> None: ...

class SendResponse(_message.Message):
    __slots__ = ("heaps", "bytes")
    HEAPS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    heaps: int
    bytes: int
    def __init__(self, heaps: _Optional[int] = ..., bytes: _Optional[int] = ...) -> None: ...
