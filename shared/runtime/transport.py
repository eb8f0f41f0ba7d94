"""The transport seam: an ``Address`` in, an asyncio byte stream out.

In the spirit of python-can's bus interfaces, a Smart Device session (either generation) only
sees ``asyncio.StreamReader``/``StreamWriter``; whether the bytes cross a serial port, a
pseudo-terminal or a virtual device's socket is decided here, once.

- ``open_stream(address)``: connect (serial/pty paths are opened as serial ports at 115200 8N1;
  unix/tcp as socket clients).
- ``listen(address, on_stream)``: accept streams on a unix or tcp address.
- ``open_pty(link)``: the device end of a new pseudo-terminal, linked at ``link`` so a host opens
  ``link`` as a serial port (how virtual devices look like USB ones).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from runtime.address import Address, AddressError

BAUD_RATE = 115200
Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]
OnStream = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def open_stream(address: Address | str, baudrate: int = BAUD_RATE) -> Stream:
    """Connect to ``address``; OSError (or serial.SerialException, an OSError) if it cannot."""
    address = Address.parse(address)
    if address.kind in ("serial", "pty"):
        import serial_asyncio_fast

        return await serial_asyncio_fast.open_serial_connection(  # type: ignore[no-any-return]
            url=address.path, baudrate=baudrate)
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
