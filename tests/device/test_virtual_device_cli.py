"""``runtime virtual-device`` as a user runs it: a subprocess talking to a device service."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from tests.support.wait import wait_for_async

RUNTIME = [sys.executable, "-m", "runtime", "virtual-device"]


async def _run(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(*RUNTIME, *args, stdout=subprocess.DEVNULL,
                                                stderr=subprocess.PIPE)


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
    await process.wait()


async def test_connect_mode_is_discovered(rig):
    process = await _run("KoalaBear", "--uid", "99", "--connect", rig.address)
    try:
        uid = str((13 << 72) | (1 << 64) | 99)
        await wait_for_async(lambda: rig.infos.get(uid) is not None)
        assert rig.infos[uid].type == "KoalaBear"
    finally:
        await _stop(process)
    await wait_for_async(lambda: rig.infos.get(uid, "absent") is None)


async def test_pty_mode_is_opened_as_a_serial_port(serial_rig):
    rig, directory = serial_rig
    link = directory / "ttyCLI0"
    process = await _run("LimitSwitch", "--uid", "7", "--pty", str(link))
    try:
        uid = str((0 << 72) | (1 << 64) | 7)
        await wait_for_async(lambda: rig.infos.get(uid) is not None)
        assert rig.infos[uid].port == str(link)
    finally:
        await _stop(process)
    assert not link.is_symlink()  # the simulator removed its link on SIGTERM


async def test_bad_arguments_are_one_clear_line():
    process = await _run("Toaster", "--connect", "unix:/nonexistent")
    _, err = await process.communicate()
    assert process.returncode != 0
    assert "unknown device type 'Toaster'" in err.decode()
    process = await _run("KoalaBear")
    _, err = await process.communicate()
    assert "give exactly one of --connect ADDR or --pty LINK" in err.decode()
    process = await _run("KoalaBear", "--connect", "unix:/nonexistent/sock")
    _, err = await process.communicate()
    assert process.returncode != 0 and "Traceback" not in err.decode()


async def test_devices_falls_back_to_announced_devices(mosquitto_broker, robot_name):
    from runtime.messages import DeviceInfo, encode
    from runtime.remote import Connection

    uid = str((7 << 72) | (1 << 64) | 3)
    info = DeviceInfo(uid=uid, type="ServoControl", type_id=7, port="/dev/ttyACM0", params=[],
                      subscription={"params": [], "interval_ms": 40})
    async with Connection(mosquitto_broker.url, robot=robot_name) as connection:
        await connection.publish(connection.topics.device_info(uid), encode(info), qos=1,
                                 retain=True)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "runtime", "devices", "--mqtt", mosquitto_broker.url, "--robot",
        robot_name, "--timeout", "1", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert "the device service did not answer" in err.decode()
    assert uid in out.decode() and "ServoControl" in out.decode()
