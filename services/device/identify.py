"""Which protocol generation a newly opened port speaks: one handshake for both.

Order and timing (docs/devices.md, "Identifying a port"):

1. At once, send a lowcar DEVICE_PING (``00 04 02 01 02 01``) then a Hibike Ping
   (``00 04 02 10 02 10``), back to back; repeat the pair every ``retry`` seconds (0.5 s).
2. Decode everything that comes back with both generations' message ids (they are disjoint:
   lowcar 0x01-0x06, Hibike 0x10-0x18 and 0xFF). Hibike HeartBeatRequests are answered at once
   (its firmware stops its motors after a second without answers).
3. The first *identity* packet decides, and nothing else does: a valid 10-byte ACK means lowcar,
   a valid 15-byte SubscriptionResponse means Hibike. A Hibike Error or HeartBeatRequest, a
   lowcar LOG, garbage or bad frames only prove that something is there.
4. A lowcar device that streams DEVICE_DATA without an ACK is already enabled (it lost our
   teardown RST, or its ACK was lost): it only ACKs the first PING after a reset, so it gets an
   RST (at most once per probe pair) and the next PING gets its ACK. (A LOG line alone proves
   nothing: a device may log before it is enabled.)
5. No identity within ``timeout`` seconds (10 s, the discovery timeout): the port is given up.
   A link whose device went silent is probed again with ``timeout=None`` (while the link
   lasts) and a growing pause (``backoff``, up to 1 s) between probe pairs.

Why both at once: each firmware ignores the other's ids (Hibike answers an Error at most), a
lowcar device must ACK within 1 s of the first PING and a Hibike one answers its Ping in
milliseconds, so either is identified within one round trip (well under the 2 s target) and a
device can never answer with the other generation's identity.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from dataclasses import dataclass, field

from runtime import protocol
from runtime.backoff import Backoff
from runtime.exception import DeviceError, ProtocolError
from runtime.protocol import MessageType, Packet, StreamDecoder, lowcar
from runtime.protocol.lowcar import EITHER_MESSAGE_TYPES, Ack, LowcarMessage
from runtime.protocol.uid import Generation, Uid

log = logging.getLogger(__name__)

RETRY = 0.5  #: seconds between two probe pairs
#: Lowcar traffic that only an enabled (already ACKed) device sends.
_ENABLED_LOWCAR = (LowcarMessage.DEVICE_DATA,)
READ_CHUNK = 4096


class NotASmartDevice(DeviceError):
    """Nothing on the port answered either generation's probe in time."""


@dataclass
class Identity:
    """What answered: its generation and uid, plus what it sent after its identity packet."""

    generation: Generation
    uid: Uid
    ack: Ack | None = None
    response: protocol.SubscriptionResponse | None = None
    packets: list[Packet] = field(default_factory=list)  #: decoded after the identity packet
    pending: bytes = b""  #: an incomplete frame that followed


async def identify(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    port: str,
    *,
    timeout: float | None = 10.0,
    retry: float = RETRY,
    backoff: float = 1.0,
) -> Identity:
    """Probe the port for either generation (see the module docstring).

    ``NotASmartDevice`` if nothing identifies itself within ``timeout`` (None: probe while the
    link lasts, the pause between probe pairs multiplied by ``backoff`` up to 1 s);
    ``DeviceError`` if the stream closes first.
    """
    loop = asyncio.get_running_loop()
    decoder = StreamDecoder(EITHER_MESSAGE_TYPES)
    deadline = math.inf if timeout is None else loop.time() + timeout
    next_probe = loop.time()
    pauses = Backoff(first=retry, maximum=max(retry, RETRY, 1.0), factor=max(backoff, 1.0))
    hints: set[str] = set()
    next_reset = loop.time()
    while True:
        now = loop.time()
        if now >= next_probe:
            try:
                writer.write(lowcar.ping() + protocol.ping())
            except (ConnectionError, OSError) as exc:
                raise DeviceError(f"{port}: cannot probe: {exc}", port=port) from exc
            next_probe = now + pauses.next()
        wait = min(next_probe, deadline) - loop.time()
        data = b""
        with contextlib.suppress(TimeoutError):
            data = await asyncio.wait_for(reader.read(READ_CHUNK), max(wait, 0))
            if not data:
                raise DeviceError(f"{port} closed while being identified", port=port)
        packets = decoder.feed(data) if data else []
        for index, packet in enumerate(packets):
            identity = _identity(packet, port)
            if identity is not None:
                identity.packets = packets[index + 1:]
                identity.pending = decoder.pending
                log.debug("%s identified as %s %s", port, identity.generation, identity.uid)
                return identity
            if packet.type == MessageType.HEARTBEAT_REQUEST:
                writer.write(protocol.heartbeat_response(0))
            elif packet.type in _ENABLED_LOWCAR and now >= next_reset:
                writer.write(lowcar.rst())  # reset it: the next PING gets its ACK
                next_reset = now + retry
            hints.add(packet.type.name)
        if loop.time() >= deadline:
            heard = (f"it sent {decoder.packets} packet(s) ({', '.join(sorted(hints))}) but no "
                     "identity" if hints else
                     f"{decoder.skipped_bytes} byte(s) of noise" if decoder.skipped_bytes
                     else "no answer at all")
            raise NotASmartDevice(
                f"{port} is not a Smart Device: no lowcar ACK and no Hibike "
                f"SubscriptionResponse within {timeout:g} s ({heard})", port=port,
            )


def _identity(packet: Packet, port: str) -> Identity | None:
    try:
        if packet.type == LowcarMessage.ACK:
            ack = lowcar.parse_ack(packet.payload)
            return Identity(Generation.LOWCAR, ack.uid, ack=ack)
        if packet.type == MessageType.SUBSCRIPTION_RESPONSE:
            response = protocol.parse_subscription_response(packet.payload)
            return Identity(Generation.HIBIKE, Uid(response.uid), response=response)
    except ProtocolError as exc:
        log.warning("%s: malformed %s while identifying: %s", port, packet.type.name,
                    exc.message)
    return None
