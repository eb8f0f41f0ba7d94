"""The Smart Device serial protocols, byte for byte: Hibike (reference/smart-device-protocol.md)
and lowcar (reference/lowcar-protocol.md, in ``runtime.protocol.lowcar``).

``frame``: message ids, packets, checksum and wire framing (shared by both generations);
``decoder``: the resynchronising stream decoder (given a generation's id table); ``messages``:
builders and parsers of each Hibike message; ``lowcar``: the same for lowcar; ``uid``: the
``Uid`` value type of both generations and its one parser.
Everything public is re-exported here: ``from runtime import protocol; protocol.ping()``.
"""

from runtime.protocol.decoder import StreamDecoder
from runtime.protocol.frame import (
    MAX_PAYLOAD_FROM_DEVICE,
    MAX_PAYLOAD_TO_DEVICE,
    MessageType,
    Packet,
    checksum,
    encode_packet,
)
from runtime.protocol.messages import (
    SubscriptionResponse,
    device_data,
    device_read,
    device_write,
    disable,
    error,
    heartbeat_request,
    heartbeat_response,
    parse_params,
    parse_subscription_request,
    parse_subscription_response,
    parse_values,
    ping,
    subscription_request,
    subscription_response,
)
from runtime.protocol.uid import (
    UID_MAX,
    Generation,
    Uid,
    UidError,
    make_uid,
    pack_uid,
    parse_uid,
    split_uid,
    uid_str,
    unpack_uid,
)

__all__ = [
    "MAX_PAYLOAD_FROM_DEVICE",
    "MAX_PAYLOAD_TO_DEVICE",
    "UID_MAX",
    "Generation",
    "MessageType",
    "Packet",
    "StreamDecoder",
    "SubscriptionResponse",
    "Uid",
    "UidError",
    "checksum",
    "device_data",
    "device_read",
    "device_write",
    "disable",
    "encode_packet",
    "error",
    "heartbeat_request",
    "heartbeat_response",
    "make_uid",
    "pack_uid",
    "parse_params",
    "parse_subscription_request",
    "parse_subscription_response",
    "parse_uid",
    "parse_values",
    "ping",
    "split_uid",
    "subscription_request",
    "subscription_response",
    "uid_str",
    "unpack_uid",
]
