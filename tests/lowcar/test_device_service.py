"""The device service with lowcar devices beside Hibike ones, over its virtual-device socket:
identification, info, stop rules on lowcar motors, RST both ways, silence and re-probing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
import time

import pytest
from runtime.buffer.segment import SHM_DIR
from runtime.protocol import MessageType, lowcar
from runtime.protocol.lowcar import LowcarMessage
from runtime.protocol.uid import Uid
from runtime.virtual import Faults, VirtualDevice
from runtime.virtual_lowcar import VirtualLowcarDevice

from tests.device.rig import DeviceRig
from tests.support.wait import wait_for_async

KOALA = Uid.lowcar(6, 1, 4660)
SWITCH = Uid.lowcar(1, 1, 77)


@pytest.fixture
def rig_discovery_timeout() -> float:
    """These tests give a new port 5 s to identify (the shared ``rig`` defaults to 1 s)."""
    return 5.0


async def plug_lowcar(rig: DeviceRig, type_name: str, uid: Uid | None = None,
                      **options) -> VirtualLowcarDevice:
    device = VirtualLowcarDevice(type_name, None if uid is None else uid.value, **options)
    task = asyncio.create_task(device.connect(rig.address))
    rig.devices.append((device, task))  # type: ignore[arg-type]
    return device


def writes(device: VirtualLowcarDevice) -> int:
    return sum(p.type == LowcarMessage.DEVICE_WRITE for p in device.received)


async def test_a_mixed_robot_announces_both_generations(rig):
    hibike = [await rig.plug("KoalaBear"), await rig.plug("LimitSwitch")]
    lowcars = [await plug_lowcar(rig, "KoalaBear", KOALA),
               await plug_lowcar(rig, "LimitSwitch", SWITCH, physics=False)]
    for device in hibike:
        info = await rig.online(device)
        assert info.generation == "hibike"
    koala = await rig.online(lowcars[0])
    assert (koala.generation, koala.type, koala.type_id) == ("lowcar", "KoalaBear", 6)
    assert koala.uid == str(KOALA) and koala.params[0].name == "velocity_a"
    assert koala.subscription.params == [p.name for p in koala.params]  # all stream
    switch = await rig.online(lowcars[1])
    assert switch.generation == "lowcar" and switch.type == "LimitSwitch"

    listed = {entry["uid"]: entry for entry in await rig.call("list")}
    assert {entry["generation"] for entry in listed.values()} == {"hibike", "lowcar"}
    lowcars[1].values["switch1"] = True
    buffer = rig.buffers.open_device(SWITCH)
    await wait_for_async(lambda: buffer.get("switch1") is True)
    # The RPC takes the uid in any form Uid.parse takes, or "<type>_<id>".
    assert await rig.call("read", f"  000{SWITCH}", ["switch1"]) == {"switch1": True}
    assert await rig.call("read", "1_77", ["switch1"]) == {"switch1": True}


async def test_log_lines_of_the_device_reach_the_service_log(rig, caplog):
    caplog.set_level(logging.INFO, "runtime.service.device.lowcar")
    device = await plug_lowcar(rig, "KoalaBear", KOALA)
    await rig.online(device)
    await wait_for_async(lambda: "lowcar KoalaBear 6_4660 says: KoalaBear 6_4660 ready"
                         in caplog.text)


async def test_motors_move_only_when_allowed_and_stop_with_rst(rig):
    device = await plug_lowcar(rig, "KoalaBear", KOALA)
    await rig.online(device)
    executor = rig.input_store.open_device(KOALA)
    executor.write({"velocity_a": 0.5, "deadband_a": 0.1})
    await wait_for_async(lambda: device.values["deadband_a"] == pytest.approx(0.1))
    assert device.values["velocity_a"] == 0.0  # idle: motor params held at 0

    await rig.set_mode("auto")
    await wait_for_async(lambda: device.values["velocity_a"] == 0.5)
    executor.set("velocity_b", -0.75)
    await wait_for_async(lambda: device.values["velocity_b"] == -0.75)
    await wait_for_async(lambda: executor.get("velocity_b") == -0.75)  # streamed back

    resets = device.resets
    await rig.set_mode("estop")
    await wait_for_async(lambda: device.resets > resets)  # disable = zeros, then RST
    assert device.values["velocity_a"] == 0.0 and device.values["velocity_b"] == 0.0
    await wait_for_async(lambda: device.enabled)  # the next PING: a fresh ACK, still online
    assert rig.infos[str(KOALA)] is not None
    executor.write({"velocity_a": 0.3, "deadband_b": 0.25})  # a stale writer while stopped
    await wait_for_async(lambda: device.values["deadband_b"] == pytest.approx(0.25))
    assert device.values["velocity_a"] == 0.0


async def test_teleop_without_driver_input_holds_lowcar_motors_at_zero(rig):
    device = await plug_lowcar(rig, "KoalaBear", KOALA)
    polar = await plug_lowcar(rig, "PolarBear", Uid.lowcar(5, 1, 9))
    await rig.online(device)
    await rig.online(polar)
    executor = rig.input_store.open_device(KOALA)
    polar_executor = rig.input_store.open_device(Uid.lowcar(5, 1, 9))
    await rig.set_mode("teleop")
    executor.write({"velocity_a": 0.4, "deadband_a": 0.2})
    polar_executor.write({"duty_cycle": -0.6, "deadband": 0.3})
    # The non-motor values arrive; the motor ones stay 0 (held: nothing changed, nothing sent).
    await wait_for_async(lambda: device.values["deadband_a"] == pytest.approx(0.2)
                         and polar.values["deadband"] == pytest.approx(0.3))
    assert device.values["velocity_a"] == 0.0 and polar.values["duty_cycle"] == 0.0
    gamepad = rig.live_input()
    await wait_for_async(lambda: device.values["velocity_a"] == pytest.approx(0.4)
                         and polar.values["duty_cycle"] == pytest.approx(-0.6))
    gamepad.connected = False  # the driver station went
    await wait_for_async(lambda: device.values["velocity_a"] == 0.0
                         and polar.values["duty_cycle"] == 0.0)


async def test_a_device_rst_is_answered_with_rst_and_the_device_comes_back(rig):
    device = await plug_lowcar(rig, "KoalaBear", KOALA)
    await rig.online(device)
    first = rig.manager.devices[str(KOALA)]
    device.received.clear()
    device._reset("test: the firmware reset itself")
    device._send(lowcar.rst())
    await wait_for_async(lambda: rig.manager.devices.get(str(KOALA)) not in (None, first))
    assert first.reset_by_device and first.resets_sent >= 1  # removed, answered with RST...
    assert LowcarMessage.RST in [p.type for p in device.received]
    # ...and identified again on the same connection, enabled in the end. Two ACKs, or three
    # when the old session's periodic PING met the device between its reset and the session's
    # reading of its RST: that PING is ACKed, the teardown RST disables the device again, the
    # stale ACK identifies it, and the new session's first PING gets the third ACK
    # (``LowcarSession._handle``: "our PING re-enabled it").
    await wait_for_async(lambda: device.enabled and device.acks in (2, 3),
                         message=lambda: f"enabled {device.enabled}, {device.acks} ACKs")
    await wait_for_async(lambda: rig.infos.get(str(KOALA)) is not None)


async def test_a_silent_device_is_removed_after_a_second_and_re_probed(rig):
    device = await plug_lowcar(rig, "LimitSwitch", SWITCH)
    await rig.online(device)
    device.faults = Faults(silent_after=device.sent)  # its transmitter dies
    await wait_for_async(lambda: rig.infos.get(str(SWITCH)) is None)
    assert str(SWITCH) not in rig.manager.devices
    device.faults = Faults()  # it talks again (an ACK it sent while mute was lost: the
    await wait_for_async(lambda: rig.infos.get(str(SWITCH)) is not None)  # probe resets it)
    assert device.acks >= 2


async def test_a_port_that_answers_neither_generation_is_given_up(mosquitto_broker, robot_name):
    rig = DeviceRig(mosquitto_broker.url, robot_name)
    await rig.start(discovery_timeout=0.6)
    try:
        device = await plug_lowcar(rig, "KoalaBear", KOALA, faults=Faults(unresponsive=True))
        task = rig.devices[-1][1]
        await asyncio.wait_for(task, 10)  # the service closed the connection
        assert not rig.manager.devices
        kinds = {p.type for p in device.received}
        assert kinds == {LowcarMessage.PING}  # probed (the Hibike Ping is not a lowcar id)
        assert device.decoder.bad_frames >= 1
    finally:
        with contextlib.suppress(Exception):
            await rig.stop()


async def test_after_identification_each_device_hears_only_its_own_generation(rig):
    hibike = await rig.plug("ServoControl")
    koala = await plug_lowcar(rig, "KoalaBear", KOALA)
    await rig.online(hibike)
    await rig.online(koala)
    answered = sum(p.type == MessageType.HEARTBEAT_RESPONSE for p in hibike.received)
    await wait_for_async(lambda: sum(p.type == MessageType.HEARTBEAT_RESPONSE
                                     for p in hibike.received) > answered + 3)
    pings = sum(p.type == LowcarMessage.PING for p in koala.received)
    await wait_for_async(lambda: sum(p.type == LowcarMessage.PING
                                     for p in koala.received) > pings + 3)
    # One foreign frame each: the other generation's probe, sent once, dropped by the firmware.
    assert hibike.decoder.bad_frames == 1 and koala.decoder.bad_frames == 1
    assert hibike.self_disables == 0 and koala.timeouts == 0


async def test_both_generations_on_serial_ports(serial_rig):
    """Pseudo-terminals found by the polling observer and opened with pyserial, as
    /dev/ttyACM* are: one port speaks lowcar, the other Hibike."""
    rig, directory = serial_rig
    koala = VirtualLowcarDevice("KoalaBear", KOALA.value)
    hibike = VirtualDevice("YogiBear")
    tasks = []
    for device, name in ((koala, "ttyVSD0"), (hibike, "ttyVSD1")):
        ready = asyncio.Event()
        tasks.append(asyncio.create_task(device.serve_pty(directory / name, ready)))
        await asyncio.wait_for(ready.wait(), 10)
    try:
        info = await rig.online(koala)
        assert info.generation == "lowcar" and info.port == str(directory / "ttyVSD0")
        assert (await rig.online(hibike)).generation == "hibike"
        await rig.set_mode("auto")
        rig.input_store.open_device(KOALA).set("velocity_b", 0.5)
        rig.input_store.open_device(hibike.uid).set("duty_cycle", -0.5)
        await wait_for_async(lambda: koala.values["velocity_b"] == 0.5
                             and hibike.values["duty_cycle"] == -0.5)
        buffer = rig.buffers.open_device(KOALA)
        await wait_for_async(lambda: buffer.get("enc_b") > 10)  # the simulated motor turns
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    await wait_for_async(lambda: rig.infos.get(str(KOALA)) is None)  # unplugged: removed


async def test_50_lowcar_plug_cycles_leave_nothing_behind(rig):
    async def cycle():
        device = await plug_lowcar(rig, "KoalaBear", KOALA)
        await rig.online(device)
        await rig.unplug(device)  # type: ignore[arg-type]
        await wait_for_async(lambda: rig.infos.get(str(KOALA), "absent") is None)

    await cycle()  # warm: process-wide sockets, caches
    fds = set(os.listdir("/proc/self/fd"))
    tasks = len(asyncio.all_tasks())
    mine = f"runtime.{rig.robot}@"

    def segments() -> set[str]:
        return {name for name in os.listdir(SHM_DIR) if name.startswith(mine)}

    before = segments()
    for _ in range(50):
        await cycle()
    await wait_for_async(lambda: len(asyncio.all_tasks()) <= tasks)
    await wait_for_async(lambda: set(os.listdir("/proc/self/fd")) == fds)
    assert segments() == before


@pytest.mark.parametrize("faults", [Faults(garbage=True), Faults(bad_checksum=True)])
async def test_garbage_and_bad_checksums_are_survived(rig, faults):
    device = await plug_lowcar(rig, "KoalaBear", KOALA, faults=faults)
    await rig.online(device)
    buffer = rig.buffers.open_device(KOALA)
    count = buffer.update_count
    await wait_for_async(lambda: buffer.update_count > count + 10)
    assert rig.manager.devices[str(KOALA)].decoder.bad_frames > 0 or faults.garbage


async def test_a_stalled_service_does_not_declare_a_live_device_dead(rig):
    """The device (its own thread and event loop, a firmware timeout longer than the stall)
    keeps streaming while the service's event loop is frozen for longer than the 1 s silence
    limit; the bytes that arrived are read before the silence is judged."""
    device = VirtualLowcarDevice("KoalaBear", KOALA.value, timeout=5.0)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete,
                              args=(device.connect(rig.address),), daemon=True)
    thread.start()
    try:
        await wait_for_async(lambda: rig.infos.get(str(KOALA)))
        session = rig.manager.devices[str(KOALA)]
        time.sleep(1.5)  # the fault under test: this event loop (the service's) is frozen
        buffer = rig.buffers.open_device(KOALA)
        count = buffer.update_count
        await wait_for_async(lambda: buffer.update_count > count + 5)
        assert rig.manager.devices.get(str(KOALA)) is session
        assert not session.gone and device.timeouts == 0 and session.stalls >= 1
    finally:
        for running in list(rig.manager.devices.values()):
            await running.close("test over")  # the device's connection closes: its loop ends
        thread.join(10)
        loop.close()


async def test_the_virtual_device_command_speaks_lowcar(rig):
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "runtime", "virtual-device", "KoalaBear", "--generation",
        "lowcar", "--uid", "4660", "--connect", rig.address,
        stderr=asyncio.subprocess.PIPE)
    try:
        info = await wait_for_async(lambda: rig.infos.get(str(KOALA)))
        assert (info.generation, info.type) == ("lowcar", "KoalaBear")
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = await process.communicate()
    assert f"virtual lowcar.KoalaBear uid {KOALA}" in stderr.decode()
    assert process.returncode == 0 and b"Traceback" not in stderr
