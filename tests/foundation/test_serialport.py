"""``runtime.serialport``: a serial port (here a real pseudo-terminal) as an asyncio stream,
read with one ``os.read`` per readiness instead of pyserial's ``select`` + read."""

from __future__ import annotations

import asyncio
import os
import tty

import pytest
import serial
from runtime.serialport import DirectReadSerialTransport, open_serial_stream


@pytest.fixture
def pty_pair():
    """``(device end fd, host path)`` of a raw pseudo-terminal."""
    device, host = os.openpty()
    tty.setraw(host)
    try:
        yield device, os.ttyname(host)
    finally:
        for fd in (device, host):
            try:
                os.close(fd)
            except OSError:
                pass


async def test_bytes_cross_both_ways_without_pyserials_read(pty_pair, monkeypatch):
    def no(*_: object) -> bytes:
        raise AssertionError("pyserial's Serial.read was called")

    monkeypatch.setattr(serial.Serial, "read", no)
    device, path = pty_pair
    reader, writer = await open_serial_stream(path, 115200)
    try:
        assert isinstance(writer.transport, DirectReadSerialTransport)
        sent = bytes(range(256)) * 8  # more than one read's worth, every byte value
        os.write(device, sent[:1000])
        os.write(device, sent[1000:])
        assert await asyncio.wait_for(reader.readexactly(len(sent)), 10) == sent
        writer.write(b"\x00hello")
        await writer.drain()
        loop = asyncio.get_running_loop()
        got = b""
        while len(got) < 6:
            got += await loop.run_in_executor(None, os.read, device, 64)
        assert got == b"\x00hello"
    finally:
        writer.close()


async def test_a_device_that_goes_away_ends_the_stream_with_a_serial_error(pty_pair):
    device, path = pty_pair
    reader, writer = await open_serial_stream(path, 115200)
    try:
        os.write(device, b"last words")
        assert await asyncio.wait_for(reader.readexactly(10), 10) == b"last words"
        os.close(device)  # unplugged: the host end reads EIO
        with pytest.raises(serial.SerialException, match=r"read failed|no data") as raised:
            await asyncio.wait_for(reader.read(100), 10)
        assert path in str(raised.value)  # it says which port
    finally:
        writer.close()


async def test_a_port_that_does_not_exist_is_a_clear_oserror(tmp_path):
    with pytest.raises(OSError, match="ttyNothing"):
        await open_serial_stream(str(tmp_path / "ttyNothing"), 115200)
