"""The read tap of a device session (``transport.ReadTap``) at its edges: what the stream's
StreamReader already held when the session took the reads over, on real unix sockets and a
real device end that writes raw bytes."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from runtime import transport
from runtime.address import Address
from runtime.buffer import BufferStore
from runtime.protocol import lowcar
from runtime.service.device.identify import identify
from runtime.service.device.lowcar import LowcarSession
from runtime.virtual_lowcar import VirtualLowcarDevice

from tests.support.wait import wait_for_async

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@contextlib.asynccontextmanager
async def raw_link() -> AsyncIterator[tuple[Stream, socket.socket, str]]:
    """The host end of a unix socket (as the device service accepts a virtual device) and the
    device end as a plain blocking socket the test writes bytes on."""
    folder = Path(tempfile.mkdtemp(prefix="rt-tap-", dir="/tmp"))
    address = Address("unix", path=str(folder / "vsd.sock"))
    accepted: asyncio.Queue[Stream] = asyncio.Queue()

    async def on_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accepted.put((reader, writer))

    server = await transport.listen(address, on_stream)
    device = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    device.connect(str(folder / "vsd.sock"))
    stream = await asyncio.wait_for(accepted.get(), 10)
    try:
        yield stream, device, str(address)
    finally:
        device.close()
        stream[1].close()
        with contextlib.suppress(Exception):
            await stream[1].wait_closed()
        server.close()
        await server.wait_closed()


async def test_a_device_that_acks_and_is_unplugged_at_once_ends_its_session_on_eof(
        robot_name):
    """The ACK and the end of the stream arrive together: identification takes the ACK, and
    the StreamReader has already seen the end when the session takes the reads over. The
    session must end on that end (the link is gone), not wait for the device's silence and
    then probe a closed link."""
    uid = VirtualLowcarDevice("KoalaBear").uid
    async with raw_link() as ((reader, writer), device, port):
        device.sendall(lowcar.ack(uid))
        device.shutdown(socket.SHUT_WR)  # unplugged: nothing more will come
        await wait_for_async(lambda: reader.at_eof() or len(reader._buffer) > 0)
        identity = await identify(reader, writer, port, timeout=5)
        await wait_for_async(lambda: reader._eof)  # the end is in the StreamReader
        with BufferStore(robot_name) as buffers:
            session = LowcarSession(reader, writer, port, identity, silence_limit=30.0)
            session.attach(buffers)
            try:
                reason = await asyncio.wait_for(session.closed(), 10)
            finally:
                await session.close("test over")
    assert reason == "the connection closed"
    assert session.transport_lost


async def test_bytes_held_by_the_stream_reader_are_handled_once(robot_name):
    """LOG lines the device sent between its ACK and the session's start are in the
    StreamReader when the tap takes over: each reaches the session exactly once."""
    uid = VirtualLowcarDevice("KoalaBear").uid
    async with raw_link() as ((reader, writer), device, port):
        device.sendall(lowcar.ack(uid))
        identity = await identify(reader, writer, port, timeout=5)
        lines = [f"line {i}" for i in range(20)]
        device.sendall(b"".join(lowcar.log(line) for line in lines))
        await wait_for_async(lambda: len(reader._buffer) >= 20)
        with BufferStore(robot_name) as buffers:
            session = LowcarSession(reader, writer, port, identity, silence_limit=30.0)
            session.attach(buffers)
            try:
                more = [f"more {i}" for i in range(20)]
                device.sendall(b"".join(lowcar.log(line) for line in more))
                await wait_for_async(lambda: "more 19" in session.logs)
                assert [x for x in session.logs if x.startswith(("line", "more"))] \
                    == lines + more
            finally:
                await session.close("test over")


async def test_a_device_that_flooded_before_the_session_is_still_read(robot_name):
    """A device that sent more than the StreamReader takes before the session started: the
    StreamReader paused the transport's reads (its buffer full). The session takes those
    bytes, and reads go on: what the device sends next reaches the session."""
    uid = VirtualLowcarDevice("KoalaBear").uid
    async with raw_link() as ((reader, writer), device, port):
        device.sendall(lowcar.ack(uid))
        identity = await identify(reader, writer, port, timeout=5)
        flood = b"".join(lowcar.log(f"flood {i} " + "x" * 150) for i in range(1200))
        sent = asyncio.create_task(asyncio.to_thread(device.sendall, flood))
        await wait_for_async(lambda: reader._paused)  # the StreamReader's buffer is full
        with BufferStore(robot_name) as buffers:
            session = LowcarSession(reader, writer, port, identity, silence_limit=30.0)
            session.attach(buffers)
            try:
                await asyncio.wait_for(sent, 10)
                device.sendall(lowcar.log("the last line"))
                await wait_for_async(lambda: "the last line" in session.logs)
                assert session.decoder.bad_frames == 0
            finally:
                await session.close("test over")
