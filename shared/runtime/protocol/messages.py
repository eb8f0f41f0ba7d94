"""Builders (to wire bytes) and parsers (from payloads) of each Smart Device message.

Host-side builders check what the firmware cannot: a DeviceWrite carries only writeable params
with in-bounds values in ascending index order, because a rejected value makes the firmware misread
every value after it. Device-side builders (``subscription_response``, ``device_data``, ``error``)
serve virtual devices.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from runtime.exception import ParameterError, ProtocolError
from runtime.protocol.frame import MessageType, encode_packet
from runtime.protocol.uid import pack_uid, unpack_uid

if TYPE_CHECKING:  # the catalog imports runtime.protocol.uid: no import cycle at run time
    from runtime.catalog import DeviceType

_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_U16X2 = struct.Struct("<HH")
_SUBSCRIPTION_RESPONSE = struct.Struct("<HH11s")

Value = bool | int | float


class SubscriptionResponse(NamedTuple):
    """A device's answer to Ping / SubscriptionRequest: its subscription and its UID."""

    params: int
    delay_ms: int
    uid: int


class _Layout(NamedTuple):
    """How a value list for one (device type, bitmap) is laid out: names and struct."""

    names: tuple[str, ...]
    struct: struct.Struct


# id(DeviceType) -> (the DeviceType, kept alive so its id is never reused; bitmap -> layout).
# Keyed by id because hashing a pydantic model hashes all its fields on every lookup.
_LAYOUTS: dict[int, tuple[DeviceType, dict[int, _Layout]]] = {}


def _layout(device_type: DeviceType, bitmap: int) -> _Layout:
    entry = _LAYOUTS.get(id(device_type))
    if entry is None:
        entry = _LAYOUTS[id(device_type)] = (device_type, {})
    layouts = entry[1]
    layout = layouts.get(bitmap)
    if layout is None:
        if bitmap >> len(device_type.params):
            raise ProtocolError(
                f"{device_type.name} params bitmap 0x{bitmap:04x} has bits beyond its "
                f"{len(device_type.params)} params (allowed mask 0x"
                f"{(1 << len(device_type.params)) - 1:04x})",
                device_type=device_type.name,
                params=bitmap,
            )
        layout = layouts[bitmap] = _Layout(
            tuple(device_type.names(bitmap)), device_type.value_struct(bitmap)
        )
    return layout


def _field(name: str, value: Any, bits: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << bits:
        raise ProtocolError(
            f"{name} = {value!r} is out of range: it takes a whole number from 0 to "
            f"{(1 << bits) - 1}",
            field=name,
            value=value,
        )
    return value


# -- host -> device ---------------------------------------------------------------------------

_PING = encode_packet(MessageType.PING)
_DISABLE = encode_packet(MessageType.DISABLE)


def ping() -> bytes:
    """Ping: the device answers with a SubscriptionResponse carrying its UID."""
    return _PING


def disable() -> bytes:
    """Disable: motors off, servos detached; no reply."""
    return _DISABLE


def subscription_request(params: int, delay_ms: int) -> bytes:
    """Subscribe ``params`` (bitmap) every ``delay_ms`` ms (0: no periodic data)."""
    payload = _U16X2.pack(_field("params", params, 16), _field("delay_ms", delay_ms, 16))
    return encode_packet(MessageType.SUBSCRIPTION_REQUEST, payload)


def device_read(params: int) -> bytes:
    """Ask for one DeviceData with the given params bitmap."""
    return encode_packet(MessageType.DEVICE_READ, _U16.pack(_field("params", params, 16)))


def _value_payload(device_type: DeviceType, values: Mapping[str | int, Any], write: bool) -> bytes:
    bitmap, packed = value_list(device_type, values, write)
    return _U16.pack(bitmap) + packed


def value_list(
    device_type: DeviceType, values: Mapping[str | int, Any], write: bool
) -> tuple[int, bytes]:
    """``(bitmap, packed values)`` of a value list, checked (both generations use this)."""
    by_name = device_type.by_name
    checked: dict[int, Value] = {}
    for key, value in values.items():
        param = by_name.get(key) if type(key) is str else None
        if param is None:
            param = device_type.param(key)  # by index, or ParameterError naming the params
        if write:
            if not param.writeable:
                writeable = [p.name for p in device_type.params if p.writeable]
                raise ParameterError(
                    f"{device_type.name}.{param.name} is not writeable; writeable params: "
                    + (", ".join(writeable) or "none"),
                    device=device_type.name,
                    param=param.name,
                    allowed=writeable,
                )
            value = param.check_value(value, device_type.name)
        checked[param.index] = value
    order = sorted(checked)  # the firmware reads values in ascending index order
    bitmap = 0
    for index in order:
        bitmap |= 1 << index
    layout = _layout(device_type, bitmap)
    try:
        packed = layout.struct.pack(*[checked[index] for index in order])
    except (struct.error, OverflowError) as exc:
        raise ProtocolError(
            f"{device_type.name} values {dict(values)!r} do not fit their wire types: {exc}",
            device_type=device_type.name,
        ) from None
    return bitmap, packed


def device_write(device_type: DeviceType, values: Mapping[str | int, Any]) -> bytes:
    """DeviceWrite of writeable, in-bounds values (by param name or index), ascending index."""
    payload = _value_payload(device_type, values, write=True)
    return encode_packet(MessageType.DEVICE_WRITE, payload)


def heartbeat_request(id: int = 0) -> bytes:
    """HeartBeatRequest (the firmware sends id 0; hosts match replies without it)."""
    return encode_packet(MessageType.HEARTBEAT_REQUEST, _U8.pack(_field("heartbeat id", id, 8)))


def heartbeat_response(flow: int = 0) -> bytes:
    """HeartBeatResponse; the firmware reads the byte as flow control (0 = full speed)."""
    return encode_packet(MessageType.HEARTBEAT_RESPONSE, _U8.pack(_field("flow", flow, 8)))


# -- device -> host (virtual devices) ----------------------------------------------------------


def subscription_response(params: int, delay_ms: int, uid: int) -> bytes:
    """SubscriptionResponse: current params and delay, then the 11-byte UID."""
    payload = _SUBSCRIPTION_RESPONSE.pack(
        _field("params", params, 16), _field("delay_ms", delay_ms, 16), pack_uid(uid)
    )
    return encode_packet(MessageType.SUBSCRIPTION_RESPONSE, payload, to_device=False)


def device_data(device_type: DeviceType, values: Mapping[str | int, Any]) -> bytes:
    """DeviceData with the given values (by param name or index), in ascending index order."""
    payload = _value_payload(device_type, values, write=False)
    return encode_packet(MessageType.DEVICE_DATA, payload, to_device=False)


def error(code: int) -> bytes:
    """Error: 0xFD unexpected delimiter, 0xFE bad checksum, 0xFF generic."""
    payload = _U8.pack(_field("error code", code, 8))
    return encode_packet(MessageType.ERROR, payload, to_device=False)


# -- parsers -----------------------------------------------------------------------------------


def _need(payload: bytes, size: int, what: str, exact: bool = True) -> None:
    if len(payload) < size or (exact and len(payload) != size):
        raise ProtocolError(
            f"{what} payload has {len(payload)} bytes; it takes "
            f"{'exactly' if exact else 'at least'} {size}",
            message=what,
            size=len(payload),
        )


def parse_params(payload: bytes) -> int:
    """The params bitmap at the start of a DeviceRead or SubscriptionRequest payload."""
    _need(payload, 2, "params bitmap", exact=False)
    return _U16.unpack_from(payload)[0]


def parse_subscription_request(payload: bytes) -> tuple[int, int]:
    """``(params, delay_ms)`` of a SubscriptionRequest payload."""
    _need(payload, 4, "SubscriptionRequest")
    return _U16X2.unpack(payload)


def parse_subscription_response(payload: bytes) -> SubscriptionResponse:
    """``SubscriptionResponse(params, delay_ms, uid)`` of its 15-byte payload."""
    _need(payload, _SUBSCRIPTION_RESPONSE.size, "SubscriptionResponse")
    params, delay_ms, uid = _SUBSCRIPTION_RESPONSE.unpack(payload)
    return SubscriptionResponse(params, delay_ms, unpack_uid(uid))


def parse_values(device_type: DeviceType, payload: bytes) -> dict[str, Value]:
    """``{name: value}`` of a DeviceData/DeviceWrite payload (bitmap + values)."""
    if len(payload) < 2:
        _need(payload, 2, f"{device_type.name} value list", exact=False)
    bitmap = payload[0] | payload[1] << 8
    # Inlined cache hit of _layout(): this runs for every DeviceData of every device.
    entry = _LAYOUTS.get(id(device_type))
    layout = entry[1].get(bitmap) if entry is not None else None
    if layout is None:
        layout = _layout(device_type, bitmap)
    names, values = layout
    if len(payload) - 2 != values.size:
        raise _size_error(device_type, bitmap, names, values, payload)
    return dict(zip(names, values.unpack_from(payload, 2)))  # noqa: B905 - sizes checked above


def layout(device_type: DeviceType, bitmap: int) -> tuple[tuple[str, ...], struct.Struct]:
    """Names and struct of the value list of ``bitmap`` (cached; ProtocolError on bad bits)."""
    entry = _LAYOUTS.get(id(device_type))
    found = entry[1].get(bitmap) if entry is not None else None
    return found if found is not None else _layout(device_type, bitmap)


def _size_error(
    device_type: DeviceType, bitmap: int, names: tuple[str, ...], values: struct.Struct,
    payload: bytes, bitmap_size: int = 2,
) -> ProtocolError:
    return ProtocolError(
        f"{device_type.name} value list for params 0x{bitmap:04x} "
        f"({', '.join(names) or 'none'}) takes {values.size + bitmap_size} bytes, "
        f"not {len(payload)}",
        device_type=device_type.name,
        params=bitmap,
        size=len(payload),
    )
