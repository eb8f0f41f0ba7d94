"""The transport seam: an ``Address`` in, an asyncio byte stream out.

In the spirit of python-can's bus interfaces, a Smart Device session (either generation) only
sees ``asyncio.StreamReader``/``StreamWriter``; whether the bytes cross a serial port, a
pseudo-terminal or a virtual device's socket is decided here, once.

- ``open_stream(address)``: connect (serial/pty paths are opened as serial ports at 115200 8N1;
  unix/tcp as socket clients).
- ``listen(address, on_stream)``: accept streams on a unix or tcp address.
- ``open_pty(link)``: the device end of a new pseudo-terminal, linked at ``link`` so a host opens
  ``link`` as a serial port (how virtual devices look like USB ones).
- ``ReadTap``: a stream's incoming bytes to a callback instead of its StreamReader, for as long
  as a conversation wants each packet handled in the loop turn its bytes arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from runtime.address import Address, AddressError

BAUD_RATE = 115200
Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]
OnStream = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def open_stream(address: Address | str, baudrate: int = BAUD_RATE) -> Stream:
    """Connect to ``address``; OSError (or serial.SerialException, an OSError) if it cannot."""
    address = Address.parse(address)
    if address.kind in ("serial", "pty"):
        from runtime.serialport import open_serial_stream

        return await open_serial_stream(address.path, baudrate)
    if address.kind == "unix":
        return await asyncio.open_unix_connection(address.path)
    return await asyncio.open_connection(address.host, address.port)


async def listen(address: Address | str, on_stream: OnStream) -> asyncio.AbstractServer:
    """Accept streams on a unix or tcp address (a stale unix socket file is replaced)."""
    address = Address.parse(address, ("unix", "tcp"))
    if address.kind == "unix":
        path = Path(address.path)
        if path.is_socket():
            path.unlink()
        server = await asyncio.start_unix_server(on_stream, path=str(path))
        os.chmod(path, 0o660)
        return server
    if address.kind == "tcp":
        return await asyncio.start_server(on_stream, host=address.host, port=address.port)
    raise AddressError(f"cannot listen on {address}", address=str(address))


@contextlib.asynccontextmanager
async def open_pty(link: str | Path) -> AsyncIterator[Stream]:
    """A new pseudo-terminal in raw mode: yields the device end's stream; ``link`` points at
    the host end (a tty a device service opens as a serial port) until the context exits."""
    link = Path(link)
    master, slave = os.openpty()
    tty.setraw(slave)
    with contextlib.suppress(FileNotFoundError):
        link.unlink()
    link.symlink_to(os.ttyname(slave))
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    read_transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(master, "rb", buffering=0))
    write_transport, write_protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(os.dup(master), "wb", buffering=0))
    writer = asyncio.StreamWriter(write_transport, write_protocol, reader, loop)
    try:
        yield reader, writer
    finally:
        read_transport.close()
        write_transport.close()
        os.close(slave)
        with contextlib.suppress(FileNotFoundError):
            if link.is_symlink():
                link.unlink()


class ReadTap(asyncio.Protocol):
    """Hands a stream's incoming bytes to ``on_data`` in the loop turn they are read, instead of
    queueing them in its ``StreamReader`` for a coroutine to resume and take a turn later.

    Why: a Smart Device streams a packet every 40 ms; with four devices that is most of what an
    idle device service wakes up for, and a read through the StreamReader costs a second loop
    turn and a coroutine resume per packet (docs/performance.md, idle CPU).

    ``start()`` puts the tap in front of the stream's protocol and returns the bytes the
    StreamReader already held (read by then but not asked for); ``restore()`` gives the stream
    back to its StreamReader (a link that outlives the conversation is read by the next one).
    End of stream resolves ``ended`` (None, or the exception the transport was lost with) and is
    passed on, as writing's flow control is, to the StreamReader's protocol, so ``drain()`` and
    ``at_eof()`` keep working.
    """

    def __init__(self, reader: asyncio.StreamReader, transport: asyncio.BaseTransport,
                 on_data: Callable[[bytes], None],
                 ended: asyncio.Future[BaseException | None]) -> None:
        self.reader = reader
        self.transport = transport
        self.on_data = on_data
        self.ended = ended
        self.inner: Any = None

    def start(self) -> bytes:
        """Take the stream's reads; the bytes its StreamReader held until now.

        What the StreamReader saw before the tap is taken over too: the end of the stream
        (a device unplugged right after it said who it is: ``ended`` resolves now, or the
        session would wait for its silence and probe a closed link), and reads it paused
        because its buffer was full (a device that flooded before the session: they resume
        now, or nothing more would ever be read)."""
        self.inner = self.transport.get_protocol()
        self.transport.set_protocol(self)
        reader: Any = self.reader  # no public peek, end or pause state
        held: bytearray = reader._buffer
        data = bytes(held)
        held.clear()
        if reader.exception() is not None or reader._eof:
            self._end(reader.exception())
        if reader._paused:
            reader._paused = False
            with contextlib.suppress(Exception):  # a transport closed meanwhile
                self.transport.resume_reading()  # type: ignore[attr-defined]
        return data

    def restore(self) -> None:
        """Give the stream's reads back to its StreamReader."""
        if self.inner is not None and self.transport.get_protocol() is self:
            self.transport.set_protocol(self.inner)

    def data_received(self, data: bytes) -> None:
        self.on_data(data)

    def eof_received(self) -> bool | None:
        self._end(None)
        return self.inner.eof_received()  # type: ignore[no-any-return]

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(exc)
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def _end(self, exc: BaseException | None) -> None:
        if not self.ended.done():
            self.ended.set_result(exc)
