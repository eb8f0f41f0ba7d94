"""The gateway against a real robot: ``runtime up`` (embedded broker, real executor, device
service and simulated devices) with a ``Gateway`` in the test's loop, driven by a Dawn/Shepherd
client written from docs/gateway.md.

Checks docs/gateway.md's promises: the identity handshake, each message type both ways,
Dawn/Shepherd authority, disconnect -> idle, replacing connections, garbage and slow-loris
clients, DEVICE_DATA with every param and CustomData, LOG lines from a print, TIME_STAMPS,
gamepad INPUTS driving a simulated motor, and device data followed only while Dawn is connected
(none of it while no Dawn is; current values, not stale ones, when Dawn comes back).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from runtime.catalog import default_catalog
from runtime.messages import GamepadInput, LogRecord, Match, decode, encode, loads
from runtime.remote import Client, Connection
from runtime.service.gateway import Gateway
from runtime.service.gateway.proto import pie_client_pb2 as pb

from tests.e2e.robot import RunningRobot
from tests.gateway.client import (
    DAWN,
    DEVICE_DATA,
    GAME_STATE,
    INPUTS,
    LOG,
    RUN_MODE,
    SHEPHERD,
    START_POS,
    TIME_STAMPS,
    PieClient,
)
from tests.support.wait import wait_for_async

pytestmark = pytest.mark.slow

KOALA_ID = 42
PROGRAM = '''
def teleop_setup():
    print("gateway teleop setup")
    Robot.log("setup_runs", 7)

def teleop_main():
    Robot.set_value("koala", "duty_cycle_a", Gamepad.get_value("joystick_left_y"))
'''


@pytest.fixture(scope="module")
def robot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRobot]:
    running = RunningRobot(f"gw{uuid.uuid4().hex[:6]}", tmp_path_factory.mktemp("state"),
                           "--simulate", f"KoalaBear:{KOALA_ID}", "--simulate", "LimitSwitch")
    running.wait_until_up()
    running.call("executor", "upload", PROGRAM)
    yield running
    assert running.stop() == 0


class Robot:
    """The test's view of the robot over MQTT: the gateway plus what it publishes."""

    def __init__(self, running: RunningRobot, connection: Connection, gateway: Gateway) -> None:
        self.running = running
        self.connection = connection
        self.gateway = gateway
        self.matches: list[Match] = []
        self.inputs: list[tuple[str, bytes]] = []
        self.game_states: list[dict[str, Any]] = []

    async def dawn(self) -> PieClient:
        return await PieClient.connect("127.0.0.1", self.gateway.port, DAWN)

    async def shepherd(self) -> PieClient:
        return await PieClient.connect("127.0.0.1", self.gateway.port, SHEPHERD)

    @property
    def mode(self) -> str | None:
        return self.matches[-1].mode if self.matches else None

    async def wait_mode(self, mode: str) -> None:
        await wait_for_async(lambda: self.mode == mode, message=lambda: f"mode {self.mode}")

    async def wait_connected(self, name: str, peer_port: int | None = None) -> dict[str, Any]:
        def seen() -> Any:
            entry = self.gateway.clients()[name]
            if entry and (peer_port is None or entry["peer"].endswith(f":{peer_port}")):
                return entry
            return None
        return await wait_for_async(seen)


@pytest.fixture
async def rig(robot: RunningRobot) -> AsyncIterator[Robot]:
    async with Connection(robot.url, robot=robot.robot, service="gateway") as connection:
        gateway = Gateway("127.0.0.1", 0, identity_timeout=0.5, frame_timeout=0.5)
        await gateway.start(connection)
        view = Robot(robot, connection, gateway)
        topics = connection.topics

        def on_match(topic: str, payload: bytes) -> None:
            if payload:
                view.matches.append(decode(Match, payload))

        await connection.subscribe(topics.match, on_match, qos=1)
        await connection.subscribe(topics.any_input,
                                   lambda topic, payload: view.inputs.append((topic, payload)))
        await connection.subscribe(f"{topics.prefix}field/game_state",
                                   lambda topic, payload: view.game_states.append(loads(payload)))
        await wait_for_async(lambda: view.matches)
        try:
            yield view
        finally:
            await gateway.stop()
            await view.wait_mode("idle")


def stick(y: float) -> pb.UserInputs:
    return pb.UserInputs(inputs=[pb.Input(connected=True, buttons=0, axes=[0.0, y, 0.0, 0.0],
                                          source=pb.GAMEPAD)])


async def drive_until(dawn: Any, done: Any, y: float = 0.5) -> None:
    """Send Dawn's stick at ``y`` every 50 ms (a driver holding it) until a DEVICE_DATA frame
    satisfies ``done``."""

    async def keep_driving() -> None:
        while True:
            await dawn.send(INPUTS, stick(y))
            await asyncio.sleep(0.05)

    driving = asyncio.create_task(keep_driving())
    try:
        await dawn.receive_until(DEVICE_DATA, done, timeout=15)
    finally:
        driving.cancel()


def koala(message: pb.DevData) -> pb.Device | None:
    return next((d for d in message.devices
                 if d.name == "KoalaBear" and d.uid == KOALA_ID), None)


def value(device: pb.Device, name: str) -> Any:
    for param in device.params:
        if param.name == name:
            which = param.WhichOneof("val")
            return None if which is None else getattr(param, which)
    raise KeyError(name)


def duty(message: pb.DevData) -> Any:
    """The simulated KoalaBear's ``duty_cycle_a`` in a DEVICE_DATA (None: no value yet)."""
    device = koala(message)
    return None if device is None else value(device, "duty_cycle_a")


def follows_device_data(gateway: Gateway) -> bool:
    """The gateway is subscribed to device data (its Connection's subscriptions)."""
    assert gateway._connection is not None
    connection = gateway._connection
    return connection.topics.any_device_data in connection._subscribers


def quiet(gateway: Gateway) -> bool:
    """No device data subscription and no task at all (the DEVICE_DATA sender is one)."""
    return not follows_device_data(gateway) and not list(gateway._tasks)


async def test_time_stamps_are_echoed_with_the_robot_time(rig: Robot) -> None:
    dawn = await rig.dawn()
    before = int(time.time() * 1000)
    await dawn.send(TIME_STAMPS, pb.TimeStamps(dawn_timestamp=777))
    echo = await dawn.receive_until(TIME_STAMPS)
    assert echo.dawn_timestamp == 777
    assert before <= echo.runtime_timestamp <= int(time.time() * 1000)
    await dawn.close()


async def test_device_data_has_every_param_of_each_device_and_custom_data(rig: Robot) -> None:
    dawn = await rig.dawn()
    catalog = default_catalog()
    first = await dawn.receive_until(DEVICE_DATA, lambda m: koala(m) and len(m.devices) >= 3)
    names = {device.name for device in first.devices}
    assert {"KoalaBear", "LimitSwitch", "CustomData"} <= names
    for device in first.devices:
        if device.name == "CustomData":
            assert (device.type, device.uid) == (32, 2020)
            continue
        expected = [param.name for param in catalog.get(device.name).params]
        assert [param.name for param in device.params] == expected
    streamed = koala(first)
    assert streamed is not None and value(streamed, "duty_cycle_a") == 0.0
    # keeps coming, with time_ms counting from Dawn's connection
    times = []
    for _ in range(3):
        message = await dawn.receive_until(DEVICE_DATA)
        custom = next(d for d in message.devices if d.name == "CustomData")
        times.append(value(custom, "time_ms"))
    assert times == sorted(times) and times[0] < times[-1]
    await dawn.close()


async def test_robot_log_entries_appear_in_custom_data(rig: Robot) -> None:
    dawn = await rig.dawn()
    record = LogRecord(ts=time.time(), level="INFO", logger="student.log", message="speed: 1.5",
                       context={"key": "speed", "value": 1.5})
    await rig.connection.publish(rig.connection.topics.log("student"), encode(record))

    def has_speed(message: pb.DevData) -> bool:
        custom = next(d for d in message.devices if d.name == "CustomData")
        return any(p.name == "speed" and p.fval == 1.5 for p in custom.params)

    await dawn.receive_until(DEVICE_DATA, has_speed)
    await dawn.close()


async def test_dawn_drives_the_simulated_motor_and_sees_the_print(rig: Robot) -> None:
    dawn = await rig.dawn()
    await dawn.send(INPUTS, stick(0.0))
    await dawn.send(RUN_MODE, pb.RunMode(mode=pb.TELEOP))
    await rig.wait_mode("teleop")
    log = await dawn.receive_until(LOG, lambda m: any("gateway teleop setup" in line
                                                      for line in m.payload))
    assert all(line.endswith("\n") for line in log.payload)

    def custom_has_setup_runs(message: pb.DevData) -> bool:  # the student's Robot.log
        custom = next(d for d in message.devices if d.name == "CustomData")
        return any(p.name == "setup_runs" and p.ival == 7 for p in custom.params)

    await dawn.receive_until(DEVICE_DATA, custom_has_setup_runs)

    await drive_until(dawn, lambda m: koala(m) is not None and
                      value(koala(m), "duty_cycle_a") == pytest.approx(0.5))
    await dawn.send(RUN_MODE, pb.RunMode(mode=pb.IDLE))
    await rig.wait_mode("idle")
    await dawn.receive_until(DEVICE_DATA, lambda m: value(koala(m), "duty_cycle_a") == 0.0)
    await dawn.close()


async def test_dawn_disconnecting_sets_idle_and_marks_its_input_gone(rig: Robot) -> None:
    dawn = await rig.dawn()
    await dawn.send(INPUTS, stick(0.2))
    await dawn.send(RUN_MODE, pb.RunMode(mode=pb.TELEOP))
    await rig.wait_mode("teleop")
    rig.inputs.clear()
    await dawn.close()
    await rig.wait_mode("idle")
    gamepad0 = rig.connection.topics.gamepad(0)
    await wait_for_async(lambda: (gamepad0, b"") in rig.inputs)


async def test_shepherd_is_field_control_and_dawn_may_only_stop(rig: Robot) -> None:
    shepherd = await rig.shepherd()
    dawn = await rig.dawn()
    await rig.wait_connected("shepherd")
    await dawn.send(RUN_MODE, pb.RunMode(mode=pb.AUTO))
    refusal = await dawn.receive_until(LOG, lambda m: any("refused" in line for line in m.payload))
    assert "Shepherd" in "".join(refusal.payload)
    await shepherd.send(RUN_MODE, pb.RunMode(mode=pb.TELEOP))
    await rig.wait_mode("teleop")
    await dawn.send(RUN_MODE, pb.RunMode(mode=pb.IDLE))  # Dawn's stop always works
    await rig.wait_mode("idle")
    assert [m.mode for m in rig.matches].count("auto") == 0
    await shepherd.send(RUN_MODE, pb.RunMode(mode=pb.AUTO))
    await rig.wait_mode("auto")
    await shepherd.close()  # field control leaves: idle, and Dawn may start again
    await rig.wait_mode("idle")
    await wait_for_async(lambda: rig.gateway.clients()["shepherd"] is None)
    await dawn.send(RUN_MODE, pb.RunMode(mode=pb.AUTO))
    await rig.wait_mode("auto")
    await dawn.close()


async def test_start_pos_and_game_state(rig: Robot) -> None:
    shepherd = await rig.shepherd()
    await shepherd.send(START_POS, pb.StartPos(pos=pb.RIGHT))
    await wait_for_async(lambda: rig.matches[-1].start_pos == "right")
    await shepherd.send(START_POS, pb.StartPos(pos=pb.LEFT))
    await wait_for_async(lambda: rig.matches[-1].start_pos == "left")
    await shepherd.send(GAME_STATE, pb.GameState(state=2))  # type: ignore[arg-type]
    await wait_for_async(lambda: rig.game_states and rig.game_states[-1]["state"] == "2")
    await shepherd.send(LOG, pb.GameState(state=5))  # some Shepherds send it as type 2
    await wait_for_async(lambda: rig.game_states[-1]["state"] == "5")
    await shepherd.close()


async def test_a_new_connection_replaces_the_old_one(rig: Robot) -> None:
    first = await rig.dawn()
    await rig.wait_connected("dawn")
    second = await rig.dawn()
    port = second.writer.get_extra_info("sockname")[1]
    await rig.wait_connected("dawn", port)
    assert await first.closed_by_robot()
    await second.send(TIME_STAMPS, pb.TimeStamps(dawn_timestamp=5))
    assert (await second.receive_until(TIME_STAMPS)).dawn_timestamp == 5
    await second.close()


@pytest.mark.parametrize("garbage", [
    b"\x07",  # unknown identity
    b"",  # no identity byte at all (times out)
    b"\x01\x09\x00\x00",  # unknown message type
    b"\x01\x03\x00\x00",  # a robot-bound type
    b"\x01\x05\xff\xff" + b"\x00" * 100,  # oversized INPUTS
    b"\x01\x00\x02\x00\xff\xff",  # not protobuf
    b"\x01\x05",  # slow-loris: a frame that never completes
])
async def test_garbage_closes_only_that_connection(rig: Robot, garbage: bytes) -> None:
    bad = await PieClient.connect("127.0.0.1", rig.gateway.port, None)
    await bad.raw(garbage)
    assert await bad.closed_by_robot()
    dawn = await rig.dawn()  # the service carries on
    await dawn.send(TIME_STAMPS, pb.TimeStamps(dawn_timestamp=9))
    assert (await dawn.receive_until(TIME_STAMPS)).dawn_timestamp == 9
    await dawn.close()


def test_runtime_service_gateway_serves_dawn(robot: RunningRobot, tmp_path) -> None:
    import json
    import signal
    import subprocess
    import sys

    from runtime.mqtt_server import free_port

    port = free_port()
    (tmp_path / "options.json").write_text(json.dumps({"gateway_host": "127.0.0.1",
                                                       "gateway_port": port}))
    service = subprocess.Popen(
        [sys.executable, "-m", "runtime", "service", "gateway", "--mqtt", robot.url,
         "--robot", robot.robot, "--state-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        async def session() -> int:
            dawn = None
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while dawn is None:
                try:
                    dawn = await PieClient.connect("127.0.0.1", port, DAWN)
                except OSError:
                    assert loop.time() < deadline, "the gateway never listened"
                    await asyncio.sleep(0.05)
            await dawn.send(TIME_STAMPS, pb.TimeStamps(dawn_timestamp=11))
            echo = await dawn.receive_until(TIME_STAMPS)
            await dawn.close()
            return echo.dawn_timestamp

        assert asyncio.run(session()) == 11
        clients = robot.call("gateway", "clients")
        assert set(clients) == {"dawn", "shepherd"}
    finally:
        service.send_signal(signal.SIGTERM)
        output, _ = service.communicate(timeout=30)
    assert service.returncode == 0, output
    assert "gateway service ready" in output


def test_runtime_up_runs_the_gateway(tmp_path) -> None:
    from runtime.mqtt_server import free_port

    port = free_port()
    running = RunningRobot(f"gwup{uuid.uuid4().hex[:6]}", tmp_path, "--simulate", "KoalaBear",
                           "--gateway", f"127.0.0.1:{port}")
    try:
        running.wait_for_line(f"Dawn and Shepherd on 127.0.0.1:{port}")
        services = running.wait_for_line("  services ")
        assert "gateway (pid " in services, running.output()
        # the port is checked once, before the gateway takes it (not again, when it is ours)
        assert "in use" not in running.output(), running.output()

        async def echo() -> int:
            dawn = await PieClient.connect("127.0.0.1", port, DAWN)
            await dawn.send(TIME_STAMPS, pb.TimeStamps(dawn_timestamp=21))
            message = await dawn.receive_until(TIME_STAMPS)
            await dawn.close()
            return message.dawn_timestamp

        assert asyncio.run(echo()) == 21
    finally:
        assert running.stop() == 0


def test_a_busy_gateway_port_is_reported_and_the_robot_runs(tmp_path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        running = RunningRobot(f"gwbusy{uuid.uuid4().hex[:6]}", tmp_path,
                               "--gateway", f"127.0.0.1:{port}")
        try:
            line = running.wait_for_line("PiE clients")
            assert f"no gateway: port {port} is in use" in line
            assert "services" in running.wait_for_line("services")
        finally:
            assert running.stop() == 0


async def test_shepherd_is_field_control_for_the_executor_too(rig: Robot) -> None:
    """Shepherd's presence reaches the executor's authority rule: while it is connected a driver
    station on MQTT (role ``driver``) may not start the robot either."""
    from runtime.exception import RPCError
    from runtime.messages import FieldPresence
    from runtime.remote import Client

    presences: list[str] = []
    await rig.connection.subscribe_typed(
        rig.connection.topics.field_presence, FieldPresence,
        lambda topic, message: presences.append(message.state if message else "cleared"),
        qos=1)
    shepherd = await rig.shepherd()
    await wait_for_async(lambda: presences and presences[-1] == "online")
    driver = Client(rig.connection, role="driver")
    with pytest.raises(RPCError, match="field control"):
        await driver.call("executor", "set_mode", "teleop")
    await shepherd.close()
    await wait_for_async(lambda: presences[-1] == "offline")
    await rig.wait_mode("idle")


async def test_a_latched_estop_is_cleared_by_shepherd_not_by_dawn(rig: Robot) -> None:
    from runtime.remote import Client

    await Client(rig.connection).call("executor", "set_mode", "estop")  # a local operator
    await rig.wait_mode("estop")
    dawn = await rig.dawn()
    await dawn.send(RUN_MODE, pb.RunMode(mode=pb.TELEOP))
    refusal = await dawn.receive_until(
        LOG, lambda m: any("set_mode teleop failed" in line for line in m.payload))
    assert "estop" in "".join(refusal.payload)
    assert rig.mode == "estop"
    await dawn.close()
    shepherd = await rig.shepherd()
    await shepherd.send(RUN_MODE, pb.RunMode(mode=pb.AUTO))  # field control starts the match
    await rig.wait_mode("auto")
    await shepherd.close()
    await rig.wait_mode("idle")


async def test_without_dawn_no_device_data_is_followed_and_nothing_ticks(rig: Robot) -> None:
    """Device data is Dawn's alone: with no Dawn (none yet, Shepherd only, Dawn gone) the
    gateway is not subscribed to ``device/+/data`` and has no task left (the DEVICE_DATA
    sender would wake 25 times a second for nobody); with Dawn it has both."""
    gateway = rig.gateway

    def state() -> str:
        return (f"subscribed: {follows_device_data(gateway)}, "
                f"tasks: {sorted(t.get_name() for t in gateway._tasks)}")

    await wait_for_async(lambda: quiet(gateway), message=state)
    shepherd = await rig.shepherd()
    await rig.wait_connected("shepherd")
    await wait_for_async(lambda: quiet(gateway), message=state)  # field control needs none
    dawn = await rig.dawn()
    await dawn.receive_until(DEVICE_DATA)
    assert follows_device_data(gateway), state()
    assert "gateway device data" in {t.get_name() for t in gateway._tasks}, state()
    await dawn.close()
    await wait_for_async(lambda: quiet(gateway), message=state)
    await shepherd.close()
    await wait_for_async(lambda: quiet(gateway), message=state)


async def test_dawn_sees_values_that_changed_while_it_was_away(rig: Robot) -> None:
    """``device/<uid>/data`` carries only changes and is not followed while no Dawn is there:
    a Dawn that comes back sees the motor's current value, not the one it saw before."""
    dawn = await rig.dawn()
    await dawn.receive_until(DEVICE_DATA, lambda m: duty(m) == 0.0)  # A
    await dawn.close()
    await wait_for_async(lambda: quiet(rig.gateway))
    uid = next(uid for uid, (info, _) in rig.gateway.devices.items() if info.type == "KoalaBear")
    client = Client(rig.connection)
    gamepad = rig.connection.topics.gamepad(0)

    async def keep_driving() -> None:  # a driver station on MQTT, not Dawn
        while True:
            stick_up = GamepadInput(buttons=0, axes=[0.0, 0.5, 0.0, 0.0], ts=time.time())
            await rig.connection.publish(gamepad, encode(stick_up))
            await asyncio.sleep(0.05)

    async def motor_at_half() -> bool:
        values = await client.call("device", "read", uid, ["duty_cycle_a"])
        return bool(values["duty_cycle_a"] == pytest.approx(0.5))

    driving = asyncio.create_task(keep_driving())
    try:
        await client.call("executor", "set_mode", "teleop")
        await rig.wait_mode("teleop")
        await wait_for_async(motor_at_half, timeout=15)  # B, while no Dawn is connected
        assert not follows_device_data(rig.gateway)
        dawn = await rig.dawn()
        await dawn.receive_until(DEVICE_DATA, lambda m: duty(m) == pytest.approx(0.5))
    finally:
        driving.cancel()
        await client.call("executor", "set_mode", "idle")
    await rig.wait_mode("idle")
    await dawn.close()


async def test_device_data_flows_again_when_dawn_connects_again(rig: Robot) -> None:
    """Dawn leaves (device data no longer followed) and comes back: DEVICE_DATA comes again
    with the values, and a change made after it came back reaches it (the subscription is
    live again, not only the read of its connect)."""
    dawn = await rig.dawn()
    await dawn.receive_until(DEVICE_DATA, lambda m: duty(m) == 0.0)
    await dawn.close()
    await wait_for_async(lambda: quiet(rig.gateway))
    dawn = await rig.dawn()
    await dawn.receive_until(DEVICE_DATA, lambda m: duty(m) == 0.0)
    await dawn.send(INPUTS, stick(0.0))
    await dawn.send(RUN_MODE, pb.RunMode(mode=pb.TELEOP))
    await rig.wait_mode("teleop")

    await drive_until(dawn, lambda m: duty(m) == pytest.approx(0.5))
    await dawn.send(RUN_MODE, pb.RunMode(mode=pb.IDLE))
    await rig.wait_mode("idle")
    await dawn.close()
