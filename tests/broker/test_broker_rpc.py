"""The broker service's RPC methods over a real MQTT broker: options, aliases, lint."""

from __future__ import annotations

from pathlib import Path

import pytest
from runtime.exception import RPCError
from runtime.options import load_options
from runtime.remote import Client, Connection
from runtime.service.broker import Broker

SAMPLE = Path(__file__).parents[2] / "shared" / "runtime" / "sample" / "studentcode.py"
UID = str((13 << 72) | (1 << 64) | 42)


@pytest.fixture
async def robot(mqtt_broker, robot_name, tmp_path):
    """A Broker serving RPC (no buffers needed for these methods) and a client of it."""
    async with Connection(mqtt_broker.url, robot=robot_name, service="broker") as service:
        broker = Broker(None, state_dir=tmp_path / "state")
        await broker.serve(service)
        async with Connection(mqtt_broker.url, robot=robot_name) as client:
            yield broker, Client(client)


async def test_options_round_trip_and_persist(robot) -> None:
    broker, client = robot
    assert (await client.call("broker", "get_option"))["data_rate"] == 25.0
    result = await client.call("broker", "set_option", {"data_rate": 10, "main_period": 0.05})
    assert result["data_rate"] == 10.0 and result["main_period"] == 0.05
    assert await client.call("broker", "get_option", "data_rate") == 10.0
    assert await client.call("broker", "get_option", option="main_period") == 0.05
    assert load_options(broker.state_dir).data_rate == 10.0  # what the next start reads


async def test_option_errors_are_clear_replies(robot) -> None:
    _, client = robot
    with pytest.raises(RPCError, match="unknown option 'speed'; known options: main_period"):
        await client.call("broker", "set_option", {"speed": 1})
    with pytest.raises(RPCError, match="option 'data_rate' must be a number > 0"):
        await client.call("broker", "set_option", options={"data_rate": "fast"})
    with pytest.raises(RPCError, match="unknown option 'speed'"):
        await client.call("broker", "get_option", "speed")
    assert await client.call("broker", "get_option", "data_rate") == 25.0  # still served


async def test_aliases_round_trip(robot) -> None:
    broker, client = robot
    assert await client.call("broker", "list_aliases") == {}
    assert await client.call("broker", "set_alias", "koala", UID) == {"koala": UID}
    assert await client.call("broker", "set_alias", name="arm", uid="7") == {"koala": UID,
                                                                             "arm": "7"}
    assert await client.call("broker", "del_alias", "arm") == {"koala": UID}
    assert await client.call("broker", "list_aliases") == {"koala": UID}
    assert (broker.state_dir / "aliases.json").is_file()


async def test_alias_errors_are_clear_replies(robot) -> None:
    _, client = robot
    with pytest.raises(RPCError, match="alias name '13_42' is not allowed"):
        await client.call("broker", "set_alias", "13_42", UID)
    with pytest.raises(RPCError, match="'left' is not a device uid"):
        await client.call("broker", "set_alias", "koala", "left")
    with pytest.raises(RPCError, match=r"there is no alias 'arm' \(aliases: none\)"):
        await client.call("broker", "del_alias", "arm")


async def test_lint_over_rpc(robot) -> None:
    broker, client = robot
    with pytest.raises(RPCError, match="there is no student program to lint"):
        await client.call("broker", "lint", timeout=60)
    broker.student_code.parent.mkdir(parents=True, exist_ok=True)
    broker.student_code.write_bytes(SAMPLE.read_bytes())
    assert await client.call("broker", "lint", timeout=60) == []
    broker.student_code.write_text("def teleop_main():\n    Robot.set_value(motor, 'x', 1)\n")
    messages = await client.call("broker", "lint", timeout=60)
    assert [(m["symbol"], m["line"]) for m in messages] == [
        ("robot-missing-mode", 1), ("robot-unknown-param", 2), ("undefined-variable", 2)]
