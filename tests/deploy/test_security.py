"""The shipped broker-config (password file + ACL) enforced for real, on Mosquitto and on the
embedded amqtt broker given the same files.

A refused publish is dropped silently by the broker, so "it did not arrive" is shown by order:
the refused message is published first (QoS 1, acknowledged), then a marker that is allowed;
once an observer (the read-only ``monitor`` account) has the marker, anything the refused
publish could have delivered would already be there.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from runtime.buffer import BufferStore
from runtime.exception import MQTTConnectionError, RPCError
from runtime.messages import encode
from runtime.remote import Client, Connection
from runtime.service.executor import Dispatcher

from tests.deploy.conftest import (
    ACCOUNTS,
    Credentials,
    account_url,
    login,
    start_secure_broker,
)
from tests.support.brokers import TestBroker, wait_listening
from tests.support.wait import wait_for_async

Received = list[tuple[str, bytes]]


def recorder(into: Received) -> Callable[[str, bytes], None]:
    def record(topic: str, payload: bytes) -> None:
        into.append((topic, payload))

    return record


class Watch:
    """A monitor connection recording everything of one robot, plus the driver's markers."""

    def __init__(self, monitor: Connection, driver: Connection) -> None:
        self.monitor = monitor
        self.driver = driver
        self.received: Received = []

    async def start(self) -> Watch:
        await self.monitor.subscribe(self.monitor.topics.all, recorder(self.received), qos=1)
        return self

    def topics(self) -> list[str]:
        return [topic for topic, _ in self.received]

    async def settle(self) -> None:
        """Return once everything published before this call has been delivered."""
        marker = uuid.uuid4().hex.encode()
        keyboard = self.driver.topics.keyboard
        await self.driver.publish(keyboard, marker, qos=1)
        await wait_for_async(lambda: (keyboard, marker) in self.received,
                             message=lambda: f"marker never arrived; got {self.topics()}")


async def test_every_account_logs_in(secure_broker: TestBroker, credentials: Credentials,
                                     robot_name: str) -> None:
    for account in ACCOUNTS:
        async with login(secure_broker, credentials, account, robot_name) as connection:
            assert connection.connected.is_set()


async def test_anonymous_login_is_refused_in_one_clear_line(
    secure_broker: TestBroker, robot_name: str
) -> None:
    async with Connection(secure_broker.url, robot=robot_name, connect_timeout=0) as connection:
        with pytest.raises(MQTTConnectionError) as error:
            await connection.wait_connected(10.0)
    message = error.value.message
    assert message.startswith(f"broker {secure_broker.host}:{secure_broker.port} refused "
                              "anonymous login"), message
    assert "\n" not in message


@pytest.mark.parametrize("account, password", [("driver", "wrong"), ("nobody", "secret"),
                                               ("driver", "")])
async def test_wrong_password_or_unknown_user_is_refused(
    secure_broker: TestBroker, robot_name: str, account: str, password: str
) -> None:
    url = account_url(secure_broker, account, password)
    async with Connection(url, robot=robot_name, connect_timeout=0) as connection:
        with pytest.raises(MQTTConnectionError, match=f"refused user '{account}'") as error:
            await connection.wait_connected(10.0)
    assert "\n" not in error.value.message


async def test_driver_sends_input_and_calls_the_executor_but_touches_no_device_or_service(
    secure_broker: TestBroker, credentials: Credentials, robot_name: str
) -> None:
    async with (
        login(secure_broker, credentials, "monitor", robot_name) as monitor,
        login(secure_broker, credentials, "driver", robot_name) as driver,
    ):
        watch = await Watch(monitor, driver).start()
        topics = driver.topics
        refused = [topics.device_info(1), topics.device_data(1), topics.status("device"),
                   topics.status("driver"), topics.match, topics.log("student"),
                   topics.rpc("device", "list"), topics.rpc("device", "disable"),
                   f"{topics.reply_root}someone-else",
                   # a local operator's requests, field control's, and its presence
                   topics.rpc("executor", "set_mode"), topics.rpc_as("field", "executor",
                                                                     "set_mode"),
                   topics.field_presence]
        allowed = [topics.gamepad(0), topics.rpc_as("driver", "executor", "set_mode"),
                   topics.rpc_as("driver", "executor", "upload"),
                   topics.rpc("broker", "get_option")]
        for topic in [*refused, *allowed]:
            await driver.publish(topic, b"driver", qos=1)
        await watch.settle()
        arrived = watch.topics()
        assert [topic for topic in refused if topic in arrived] == []
        assert [topic for topic in allowed if topic not in arrived] == []


async def test_monitor_cannot_publish_anything(
    secure_broker: TestBroker, credentials: Credentials, robot_name: str
) -> None:
    async with (
        login(secure_broker, credentials, "monitor", robot_name) as monitor,
        login(secure_broker, credentials, "monitor", robot_name) as intruder,
        login(secure_broker, credentials, "driver", robot_name) as driver,
    ):
        watch = await Watch(monitor, driver).start()
        topics = intruder.topics
        attempts = [topics.keyboard, topics.gamepad(1), topics.match, topics.status("monitor"),
                    topics.rpc("executor", "set_mode"), topics.log("monitor"),
                    topics.rpc_as("monitor", "executor", "upload"), topics.field_presence,
                    topics.reply(intruder.client_id), topics.device_data(7)]
        for topic in attempts:
            await intruder.publish(topic, b"intruder", qos=1)
        await watch.settle()
        assert [(t, p) for t, p in watch.received if p == b"intruder"] == []


@contextlib.asynccontextmanager
async def real_executor(broker: TestBroker, credentials: Credentials, robot: str,
                        state: Path) -> AsyncIterator[Dispatcher]:
    """The executor's control process (the real Dispatcher) logged in as ``executor``."""
    async with login(broker, credentials, "executor", robot, service="executor") as connection:
        with BufferStore(robot) as buffers:
            state.mkdir(parents=True, exist_ok=True)
            (state / "studentcode.py").write_text("def teleop_main():\n    pass\n")
            dispatcher = Dispatcher(buffers, student_code=state / "studentcode.py",
                                    state_dir=state)
            await dispatcher.serve(connection)
            try:
                yield dispatcher
            finally:
                await dispatcher.close()


async def test_field_sets_the_mode_of_every_robot_and_nothing_else(
    secure_broker: TestBroker, credentials: Credentials, robot_name: str, tmp_path: Path
) -> None:
    robots = [robot_name, f"{robot_name}b"]
    async with (
        real_executor(secure_broker, credentials, robots[0], tmp_path / "0") as executor0,
        real_executor(secure_broker, credentials, robots[1], tmp_path / "1") as executor1,
        login(secure_broker, credentials, "field", robots[0]) as field0,
        login(secure_broker, credentials, "field", robots[1]) as field1,
    ):
        # A real round trip: the request reaches the executor, the reply reaches the field.
        assert (await Client(field0).call("executor", "set_mode", "teleop"))["mode"] == "teleop"
        assert (await Client(field1).call("executor", "set_mode", mode="auto"))["mode"] == "auto"
        assert [executor0.match.mode, executor1.match.mode] == ["teleop", "auto"]

        requests: Received = []
        ex0 = executor0.connection
        assert ex0 is not None
        await ex0.subscribe(ex0.topics.all, recorder(requests), qos=1)
        topics = field0.topics
        refused = [topics.rpc_as("field", "executor", "upload"), topics.rpc("broker", "lint"),
                   topics.rpc("device", "disable"), topics.gamepad(0), topics.match,
                   topics.rpc("executor", "set_mode"),  # a local operator's topic
                   topics.rpc_as("driver", "executor", "set_mode")]  # posing as a driver
        for topic in refused:
            await field0.publish(topic, b"field", qos=1)
        await field0.publish(topics.rpc_as("field", "executor", "get_mode"), b"field-marker",
                             qos=1)
        await wait_for_async(lambda: any(p == b"field-marker" for _, p in requests),
                             message=lambda: f"get_mode request never arrived: {requests}")
        assert [topic for topic, payload in requests if payload == b"field"] == []


async def test_estop_latches_and_only_field_or_an_operator_clears_it(
    secure_broker: TestBroker, credentials: Credentials, robot_name: str, tmp_path: Path
) -> None:
    async with (
        real_executor(secure_broker, credentials, robot_name, tmp_path) as executor,
        login(secure_broker, credentials, "driver", robot_name) as driver_link,
        login(secure_broker, credentials, "field", robot_name) as field_link,
        login(secure_broker, credentials, "operator", robot_name) as operator_link,
    ):
        driver, field, operator = (Client(driver_link), Client(field_link),
                                   Client(operator_link))
        assert (driver.role, field.role, operator.role) == ("driver", "field", None)
        # no field control: a driver station starts and stops the robot
        await driver.call("executor", "set_mode", "teleop")
        reply = await driver.call("executor", "set_mode", "estop")
        assert reply["estop_latched"] is True
        for who in (driver, field, operator):
            with pytest.raises(RPCError, match="estop is latched, so teleop cannot start"):
                await who.call("executor", "set_mode", "teleop")
        with pytest.raises(RPCError, match="a driver station cannot clear estop"):
            await driver.call("executor", "set_mode", "idle", clear_estop=True)
        assert executor.latched and executor.match.mode == "estop"
        await field.call("executor", "set_mode", "idle", clear_estop=True)
        assert not executor.latched
        await driver.call("executor", "set_mode", "estop")
        reply = await operator.call("executor", "set_mode", "teleop", clear_estop=True)
        assert reply["mode"] == "teleop" and reply["estop_latched"] is False

        # field control connected: a driver station may only stop
        presence = field_link.topics.field_presence
        await field_link.publish(presence, encode({"state": "online", "ts": 1.0}), qos=1,
                                 retain=True)
        await wait_for_async(lambda: executor.field_connected)
        await driver.call("executor", "set_mode", "idle")
        with pytest.raises(RPCError, match="field control is connected: a driver station may "
                           "only stop"):
            await driver.call("executor", "set_mode", "auto")
        await field.call("executor", "set_mode", "auto")
        await driver.call("executor", "set_mode", "estop")
        assert executor.match.mode == "estop" and executor.latched
        await field.call("executor", "set_mode", "idle", clear_estop=True)
        await field_link.publish(presence, encode({"state": "offline", "ts": 2.0}), qos=1,
                                 retain=True)
        await wait_for_async(lambda: not executor.field_connected)
        await driver.call("executor", "set_mode", "teleop")  # field gone: drivers start again
        await field_link.publish(presence, b"", qos=1, retain=True)


async def test_field_reads_match_and_status_but_not_devices_or_others_replies(
    secure_broker: TestBroker, credentials: Credentials, robot_name: str
) -> None:
    async with (
        login(secure_broker, credentials, "field", robot_name) as field,
        login(secure_broker, credentials, "executor", robot_name, service="executor") as ex,
        login(secure_broker, credentials, "device", robot_name, service="device") as device,
        login(secure_broker, credentials, "driver", robot_name) as driver,
    ):
        seen: Received = []
        # Subscriptions that could match forbidden topics: granted or refused, nothing leaks.
        for filter_ in (field.topics.all, field.topics.any_device_info,
                        f"{field.topics.reply_root}{driver.client_id}/#"):
            await field.subscribe(filter_, recorder(seen), qos=1)
        await device.publish(device.topics.device_info(5), b"info", qos=1, retain=True)
        await ex.publish(ex.topics.reply(driver.client_id), b"private", qos=1)
        await ex.publish(ex.topics.match, b"match", qos=1, retain=True)
        await wait_for_async(lambda: (field.topics.match, b"match") in seen,
                             message=lambda: f"match never reached field: {seen}")
        assert any(t == field.topics.status("executor") for t, _ in seen)
        assert {p for _, p in seen} & {b"info", b"private"} == set()
        # A new subscription gets retained messages only where the account may read.
        retained: Received = []
        await field.subscribe(field.topics.prefix + "#", recorder(retained), qos=1)
        await field.subscribe(field.topics.match, recorder(retained), qos=1)
        await wait_for_async(lambda: any(t == field.topics.match for t, _ in retained))
        assert b"info" not in {p for _, p in retained}
        await device.publish(device.topics.device_info(5), b"", qos=1, retain=True)
        await ex.publish(ex.topics.match, b"", qos=1, retain=True)


async def test_a_service_publishes_only_its_own_topics(
    secure_broker: TestBroker, credentials: Credentials, robot_name: str
) -> None:
    async with (
        login(secure_broker, credentials, "monitor", robot_name) as monitor,
        login(secure_broker, credentials, "driver", robot_name) as driver,
        login(secure_broker, credentials, "device", robot_name, service="device") as device,
        login(secure_broker, credentials, "broker", robot_name, service="broker") as broker,
    ):
        watch = await Watch(monitor, driver).start()
        topics = device.topics
        await device.publish(topics.status("executor"), b"forged", qos=1, retain=True)
        await device.publish(topics.status("broker"), b"forged", qos=1, retain=True)
        await device.publish(topics.match, b"forged", qos=1, retain=True)
        await device.publish(topics.device_data(3), b"forged", qos=1)
        await broker.publish(topics.status("device"), b"forged", qos=1, retain=True)
        await broker.publish(topics.device_info(3), b"forged", qos=1, retain=True)
        await broker.publish(topics.gamepad(0), b"forged", qos=1)
        await device.publish(topics.device_info(3), b"own", qos=1)
        await device.publish(topics.log("device"), b"own", qos=1)
        await device.publish(topics.log("student"), b"own", qos=1)  # device lines, students
        await broker.publish(topics.device_data(3), b"own", qos=1)
        await broker.publish(topics.reply(driver.client_id), b"own", qos=1)
        await watch.settle()
        assert [t for t, p in watch.received if p == b"forged"] == []
        assert len([t for t, p in watch.received if p == b"own"]) == 5
        # The online statuses the Connections published for themselves did arrive.
        assert topics.status("device") in watch.topics()
        assert topics.status("broker") in watch.topics()
    # Nothing forged was retained either: a late subscriber sees only the real statuses.
    async with login(secure_broker, credentials, "monitor", robot_name) as late:
        late_seen: Received = []
        await late.subscribe(late.topics.any_status, recorder(late_seen), qos=1)
        await wait_for_async(lambda: len(late_seen) >= 2)
        assert b"forged" not in {p for _, p in late_seen}


async def test_a_service_account_cannot_pose_as_another_service(
    secure_broker: TestBroker, credentials: Credentials, robot_name: str
) -> None:
    """The device account connecting as the executor: its online status and last will on
    service/executor/status are dropped, so nobody sees a fake executor."""
    async with (
        login(secure_broker, credentials, "monitor", robot_name) as monitor,
        login(secure_broker, credentials, "driver", robot_name) as driver,
    ):
        watch = await Watch(monitor, driver).start()
        async with login(secure_broker, credentials, "device", robot_name, service="executor"):
            pass
        await watch.settle()
        assert monitor.topics.status("executor") not in watch.topics()


def test_mosquitto_websockets_listener_asks_for_the_same_logins(
    credentials: Credentials, robot_name: str
) -> None:
    """Browser clients use MQTT over websockets (port 9001 in the shipped config)."""
    broker = start_secure_broker("mosquitto", credentials)
    try:
        port = broker.websockets_port  # type: ignore[union-attr]
        wait_listening("127.0.0.1", port)
        results = {}
        for name, password in (("monitor", credentials.passwords["monitor"]),
                               ("monitor", "wrong"), (None, None)):
            client = mqtt.Client(CallbackAPIVersion.VERSION2, transport="websockets")
            if name is not None:
                client.username_pw_set(name, password)
            connected = threading.Event()
            codes: list[Any] = []

            def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, props: Any,
                           codes: list[Any] = codes, connected: threading.Event = connected
                           ) -> None:
                codes.append(reason)
                connected.set()

            client.on_connect = on_connect
            client.connect("127.0.0.1", port, keepalive=10)
            client.loop_start()
            try:
                assert connected.wait(10), "no CONNACK over websockets"
            finally:
                client.loop_stop()
                client.disconnect()
            results[(name, password == "wrong")] = codes[0].is_failure
        assert results == {("monitor", False): False, ("monitor", True): True,
                           (None, False): True}
    finally:
        broker.close()
