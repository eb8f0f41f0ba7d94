"""Hostile MQTT clients against a whole robot (``runtime up``, two simulated devices): what a
service subscribes to or serves must answer bad input with a clear line, never a traceback.

Found by the breaker:
- ``input/gamepad/²`` (a Unicode digit that ``str.isdigit`` accepts and ``int`` refuses) made
  the broker service log a traceback for every message, without the rate limit of bad input;
- ``device.subscribe`` with an interval of NaN, infinity, a negative or a too long one
  answered ``ValueError``/``OverflowError`` and logged a traceback, instead of a
  ``ParameterError`` naming what the protocol takes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from runtime.exception import RPCError
from runtime.messages import GamepadInput, encode

from tests.e2e.robot import RunningRobot
from tests.support.wait import wait_for

pytestmark = pytest.mark.slow

KOALA = 42


@pytest.fixture(scope="module")
def robot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRobot]:
    running = RunningRobot(f"brk{uuid.uuid4().hex[:6]}", tmp_path_factory.mktemp("state"),
                           "--simulate", f"KoalaBear:{KOALA}", "--simulate", "LimitSwitch")
    running.wait_until_up()
    yield running
    assert running.stop() == 0


def koala_uid(robot: RunningRobot) -> str:
    devices: list[dict[str, Any]] = robot.call("device", "list")
    return next(d["uid"] for d in devices if d["type"] == "KoalaBear")


def tracebacks(robot: RunningRobot) -> list[str]:
    return [line for line in robot.lines if "Traceback" in line]


def publish(robot: RunningRobot, topic: str, payload: bytes, count: int = 1) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"h{uuid.uuid4().hex[:6]}")
    client.connect("127.0.0.1", robot.port)
    client.loop_start()
    try:
        for _ in range(count):
            client.publish(f"runtime/{robot.robot}/{topic}", payload, qos=1).wait_for_publish(10)
    finally:
        client.loop_stop()
        client.disconnect()


def test_a_gamepad_topic_with_a_unicode_digit_is_dropped_with_one_clear_line(
        robot: RunningRobot) -> None:
    # a well-formed payload, so the topic's index is what is wrong
    payload = encode(GamepadInput(buttons=0, axes=[0.0, 0.0, 0.0, 0.0], ts=0.0))
    publish(robot, "input/gamepad/\u00b2", payload, count=20)
    robot.wait_for_line("invalid gamepad index '\u00b2'")
    assert not tracebacks(robot), robot.output()
    assert len([line for line in robot.lines if "gamepad/\u00b2" in line]) == 1


@pytest.mark.parametrize("interval", [float("nan"), float("inf"), -5.0, 1e12],
                         ids=["nan", "inf", "negative", "too-long"])
def test_a_subscription_interval_the_protocol_cannot_carry_is_a_parameter_error(
        robot: RunningRobot, interval: float) -> None:
    uid = koala_uid(robot)
    with pytest.raises(RPCError) as raised:
        robot.call("device", "subscribe", uid, None, interval)
    assert getattr(raised.value, "remote_type", None) == "ParameterError"
    assert "65.535 s" in str(raised.value)
    assert not tracebacks(robot), robot.output()
    # the device keeps its subscription and the service keeps serving
    assert koala_uid(robot) == uid
    wait_for(lambda: robot.call("device", "read", uid, ["duty_cycle_a"]) == {"duty_cycle_a": 0.0})
