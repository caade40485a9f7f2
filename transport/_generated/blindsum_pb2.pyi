from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    KIND_UNSPECIFIED: _ClassVar[Kind]
    KIND_FIT: _ClassVar[Kind]
    KIND_READY: _ClassVar[Kind]
    KIND_PROTOCOL: _ClassVar[Kind]
    KIND_NO_REPLY: _ClassVar[Kind]
    KIND_ROUND_END: _ClassVar[Kind]
    KIND_FINISHED: _ClassVar[Kind]
    KIND_ABORT: _ClassVar[Kind]
    KIND_EVALUATE: _ClassVar[Kind]
KIND_UNSPECIFIED: Kind
KIND_FIT: Kind
KIND_READY: Kind
KIND_PROTOCOL: Kind
KIND_NO_REPLY: Kind
KIND_ROUND_END: Kind
KIND_FINISHED: Kind
KIND_ABORT: Kind
KIND_EVALUATE: Kind

class Value(_message.Message):
    __slots__ = ("bool_value", "int_value", "float_value", "string_value")
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    FLOAT_VALUE_FIELD_NUMBER: _ClassVar[int]
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    bool_value: bool
    int_value: int
    float_value: float
    string_value: str
    def __init__(self, bool_value: bool = ..., int_value: _Optional[int] = ..., float_value: _Optional[float] = ..., string_value: _Optional[str] = ...) -> None: ...

class Header(_message.Message):
    __slots__ = ("kind", "round_id", "size", "config", "detail", "stage")
    class ConfigEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    KIND_FIELD_NUMBER: _ClassVar[int]
    ROUND_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    kind: Kind
    round_id: int
    size: int
    config: _containers.MessageMap[str, Value]
    detail: str
    stage: str
    def __init__(self, kind: _Optional[_Union[Kind, str]] = ..., round_id: _Optional[int] = ..., size: _Optional[int] = ..., config: _Optional[_Mapping[str, Value]] = ..., detail: _Optional[str] = ..., stage: _Optional[str] = ...) -> None: ...

class Frame(_message.Message):
    __slots__ = ("header", "data", "last")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    header: Header
    data: bytes
    last: bool
    def __init__(self, header: _Optional[_Union[Header, _Mapping]] = ..., data: _Optional[bytes] = ..., last: bool = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("client_id", "version")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    client_id: int
    version: int
    def __init__(self, client_id: _Optional[int] = ..., version: _Optional[int] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ("client_id", "backend", "version")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    client_id: int
    backend: str
    version: int
    def __init__(self, client_id: _Optional[int] = ..., backend: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class ClientFrame(_message.Message):
    __slots__ = ("hello", "frame")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    frame: Frame
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., frame: _Optional[_Union[Frame, _Mapping]] = ...) -> None: ...

class ServerFrame(_message.Message):
    __slots__ = ("welcome", "frame")
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    welcome: Welcome
    frame: Frame
    def __init__(self, welcome: _Optional[_Union[Welcome, _Mapping]] = ..., frame: _Optional[_Union[Frame, _Mapping]] = ...) -> None: ...
