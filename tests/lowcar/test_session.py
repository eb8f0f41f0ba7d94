"""Identification of both generations and the lowcar session, against virtual devices on real
sockets and real pseudo-terminals (no device service: the session alone, real shared memory)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from runtime import transport
from runtime.address import Address
from runtime.buffer import BufferStore
from runtime.protocol.lowcar import LowcarMessage
from runtime.service.device.identify import NotASmartDevice, identify
from runtime.service.device.lowcar import LowcarSession
from runtime.virtual import Faults, VirtualDevice
from runtime.virtual_lowcar import VirtualLowcarDevice

from tests.support.wait import wait_for_async

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@contextlib.asynccontextmanager
async def connected(device: VirtualDevice | VirtualLowcarDevice,
                    how: str) -> AsyncIterator[tuple[Stream, str]]:
    """The host end of a stream whose other end ``device`` serves: a unix socket, or a pty
    opened as a serial port (what the device service does with /dev/ttyACM*)."""
    folder = Path(tempfile.mkdtemp(prefix="rt-lc-", dir="/tmp"))
    accepted: asyncio.Queue[Stream] = asyncio.Queue()
    if how == "socket":
        address = Address("unix", path=str(folder / "vsd.sock"))

        async def on_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await accepted.put((reader, writer))

        server = await transport.listen(address, on_stream)
        task = asyncio.create_task(device.connect(address))
        stream = await asyncio.wait_for(accepted.get(), 10)
        port = str(address)
    else:
        ready = asyncio.Event()
        link = folder / "ttyLC"
        task = asyncio.create_task(device.serve_pty(link, ready))
        await asyncio.wait_for(ready.wait(), 10)
        server = None
        stream = await transport.open_stream(Address("pty", path=str(link)))
        port = f"pty:{link}"
    try:
        yield stream, port
    finally:
        stream[1].close()
        with contextlib.suppress(Exception):
            await stream[1].wait_closed()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        if server is not None:
            server.close()
            await server.wait_closed()


@pytest.mark.parametrize("how", ["socket", "pty"])
@pytest.mark.parametrize(("generation", "device_type"),
                         [("lowcar", "KoalaBear"), ("hibike", "KoalaBear"),
                          ("lowcar", "LimitSwitch"), ("hibike", "LimitSwitch")])
async def test_each_generation_is_identified_as_itself(how, generation, device_type):
    device = (VirtualLowcarDevice(device_type) if generation == "lowcar"
              else VirtualDevice(device_type))
    async with connected(device, how) as ((reader, writer), port):
        identity = await identify(reader, writer, port, timeout=10)
    assert identity.generation == generation
    assert identity.uid.value == int(device.uid)
    assert identity.uid.generation == generation


@pytest.mark.parametrize("how", ["socket", "pty"])
async def test_a_port_that_answers_neither_is_given_up_cleanly(how):
    """A lowcar device that reads but never answers, and one that only sends noise."""
    for faults in (Faults(unresponsive=True), Faults(garbage=True, silent_after=0)):
        device = VirtualLowcarDevice("KoalaBear", faults=faults)
        async with connected(device, how) as ((reader, writer), port):
            with pytest.raises(NotASmartDevice, match="no lowcar ACK and no Hibike"):
                await identify(reader, writer, port, timeout=0.6, retry=0.2)
            # it was probed with both generations' pings, and nothing else
            await wait_for_async(lambda device=device: len(device.received) >= 2)
            assert {p.type for p in device.received} == {LowcarMessage.PING}


async def test_a_hibike_device_is_not_confused_by_lowcar_probes():
    """Hibike firmware sees the lowcar PING as an unknown id; it still answers its own Ping,
    and its heartbeat requests are answered while it is being identified."""
    device = VirtualDevice("ServoControl")
    async with connected(device, "socket") as ((reader, writer), port):
        identity = await identify(reader, writer, port)
        assert identity.generation == "hibike"
        assert device.decoder.bad_frames >= 1  # the lowcar PING, dropped by the firmware
        assert not device.disabled


@contextlib.asynccontextmanager
async def session_for(device: VirtualLowcarDevice, robot: str, how: str = "socket",
                      **options) -> AsyncIterator[LowcarSession]:
    async with connected(device, how) as ((reader, writer), port):
        identity = await identify(reader, writer, port)
        with BufferStore(robot) as buffers:
            session = LowcarSession(reader, writer, port, identity, **options)
            await session.discover(buffers)
            try:
                yield session
            finally:
                await session.close("test over")


async def test_data_streams_into_the_buffer_and_log_lines_reach_the_service_log(
        robot_name, caplog):
    caplog.set_level(logging.INFO, "runtime.service.device.lowcar")
    device = VirtualLowcarDevice("LimitSwitch", 4660, physics=False)
    async with session_for(device, robot_name) as session:
        assert session.device_type.qualified_name == "lowcar.LimitSwitch"
        assert session.uid.short == "1_4660"
        device.values.update(switch0=True, switch1=False, switch2=True)
        buffer = session.buffer
        await wait_for_async(lambda: buffer.get("switch0") and buffer.get("switch2"))
        device.values["switch2"] = False
        await wait_for_async(lambda: not buffer.get("switch2"))
        await wait_for_async(lambda: "LimitSwitch 1_4660 ready" in caplog.text)
        assert await session.read(["switch0"], timeout=10) == {"switch0": True}


async def test_pings_keep_the_device_alive_and_writes_carry_only_changed_params(robot_name):
    device = VirtualLowcarDevice("KoalaBear", timeout=0.5)
    async with session_for(device, robot_name) as session:
        buffer = session.buffer
        buffer.set("velocity_a", 0.5)
        buffer.set("invert_b", True)
        await wait_for_async(lambda: device.values["velocity_a"] == 0.5
                             and device.values["invert_b"] is True)
        writes_before = [p for p in device.received if p.type == LowcarMessage.DEVICE_WRITE]
        buffer.set("velocity_a", 0.5)  # unchanged: nothing to send
        buffer.set("velocity_b", -0.25)
        await wait_for_async(lambda: device.values["velocity_b"] == -0.25)
        writes = [p for p in device.received if p.type == LowcarMessage.DEVICE_WRITE]
        assert len(writes) == len(writes_before) + 1
        assert writes[-1].payload[:4] == (1 << 8).to_bytes(4, "little")  # velocity_b alone
        # Longer than the device's 0.5 s timeout: PINGs every 250 ms keep it enabled.
        pings = sum(p.type == LowcarMessage.PING for p in device.received)
        await wait_for_async(lambda: sum(p.type == LowcarMessage.PING
                                         for p in device.received) >= pings + 4)
        assert device.timeouts == 0 and device.enabled


async def test_disable_zeroes_motors_sends_rst_and_the_device_comes_back(robot_name):
    device = VirtualLowcarDevice("KoalaBear")
    async with session_for(device, robot_name) as session:
        session.buffer.set("velocity_a", 0.8)
        session.buffer.set("deadband_b", 0.2)
        await wait_for_async(lambda: device.values["velocity_a"] == pytest.approx(0.8))
        await session.disable()
        await wait_for_async(lambda: device.resets == 1)
        assert device.values["velocity_a"] == 0.0
        # The next PING re-enables it (a fresh ACK); the session keeps it and restores what
        # a reset does not keep on purpose: here deadband_b.
        await wait_for_async(lambda: session.acks == 2 and device.enabled)
        await wait_for_async(lambda: device.values["deadband_b"] == pytest.approx(0.2))
        assert not session.gone


async def test_a_device_rst_ends_the_session_which_answers_with_rst(robot_name):
    device = VirtualLowcarDevice("KoalaBear", timeout=0.3)
    async with session_for(device, robot_name, ping_period=30.0) as session:
        reason = await asyncio.wait_for(session.closed(), 10)
        assert reason == "the device reset itself (RST)" and session.reset_by_device
        assert device.timeouts == 1
        await session.close("answering the RST", keep_transport=True)
        await wait_for_async(lambda: device.received[-1].type == LowcarMessage.RST)


@pytest.mark.parametrize("how", ["socket", "pty"])
async def test_a_silent_device_is_dead_after_a_second(robot_name, how):
    device = VirtualLowcarDevice("LimitSwitch", faults=Faults(silent_after=5))
    async with session_for(device, robot_name, how) as session:
        reason = await asyncio.wait_for(session.closed(), 10)
        assert reason.startswith("no packet for 1.")
        assert session.stream_open  # the port can be probed again


def test_koalabear_ramps_inverts_and_snaps_inside_the_deadband():
    device = VirtualLowcarDevice("KoalaBear")
    device.values["velocity_a"] = 1.0
    device.step(0.1, 0)
    assert device.output["a"] == pytest.approx(0.2)  # 2.0 duty per second at most
    for _ in range(10):
        device.step(0.1, 0)
    assert device.output["a"] == pytest.approx(1.0)
    assert device.values["enc_a"] > 0
    device.values["invert_a"] = True
    device.step(0.1, 0)
    assert device.output["a"] == pytest.approx(0.8)  # heading for -1.0
    device.values["velocity_a"] = 0.0
    device.output["a"] = 0.04
    device.step(0.001, 0)
    assert device.output["a"] == 0.0  # inside the 0.05 deadband with a 0 target
    device.values.update(velocity_b=-0.5, pid_kp_b=1.0, pid_enabled_b=True, deadband_b=0.3)
    device._reset("test")
    assert device.values["velocity_b"] == 0.0 and device.values["pid_kp_b"] == pytest.approx(
        0.045) and device.values["pid_enabled_b"] is False
    assert device.values["deadband_b"] == 0.3  # a reset keeps it


async def test_an_enabled_device_whose_ack_was_lost_is_reset_and_identified():
    """It streams DEVICE_DATA but ignores PINGs (it ACKs only the first after a reset)."""
    device = VirtualLowcarDevice("KoalaBear")
    device.enabled = True  # as if its ACK had been lost on the wire
    async with connected(device, "socket") as ((reader, writer), port):
        identity = await identify(reader, writer, port, retry=0.2)
    assert identity.generation == "lowcar" and identity.uid == device.uid
    assert device.resets == 1 and device.acks == 1


async def test_a_paused_process_is_a_stall_not_silence(robot_name):
    """The watchdog tells its own process's pause (SIGSTOP, an overloaded robot) from a silent
    device: it counts a stall and restarts the silence clock."""
    device = VirtualLowcarDevice("LimitSwitch")
    async with session_for(device, robot_name) as session:
        heard = session.last_heard
        await wait_for_async(lambda: session.last_heard > heard)  # the session's tasks run
        stalls = session.stalls
        # the stimulus, not a wait: the whole event loop stops for three watchdog periods
        # (under the device's and the session's 1 s limits)
        time.sleep(0.6)
        await wait_for_async(lambda: session.stalls > stalls, message="no stall counted")
        assert not session.gone
        device.faults = Faults(silent_after=0)  # the device goes silent now: still judged
        reason = await asyncio.wait_for(session.closed(), 10)
        assert reason.startswith("no packet for")
