"""What flows: crossing events, rejections and window records, their topics and codecs."""

from gatewatch.streams.codec import Decoder, encode_event, encode_window
from gatewatch.streams.records import (
    DIRECTIONS,
    EVENT_TYPES,
    CrossingEvent,
    Rejection,
    WindowRecord,
)
from gatewatch.streams.topics import Topics

__all__ = [
    "DIRECTIONS",
    "EVENT_TYPES",
    "CrossingEvent",
    "Decoder",
    "Rejection",
    "Topics",
    "WindowRecord",
    "encode_event",
    "encode_window",
]
