"""``runtime call``, ``runtime monitor`` and ``runtime mqtt-server`` as real subprocesses."""

from __future__ import annotations

import asyncio
import json
import signal
import sys

import cbor2
import pytest
from runtime.exception import DeviceError
from runtime.messages import Match, encode
from runtime.mqtt_server import free_port
from runtime.remote import Connection, Handler, rpc

from tests.support.brokers import wait_listening


class Robot(Handler):
    @rpc
    async def move(self, speed: float, *, side: str = "left") -> dict:
        return {"speed": speed, "side": side}

    @rpc
    async def fail(self) -> None:
        raise DeviceError("motor 7 is unplugged", uid="7")


async def runtime_cli(*args: str, timeout: float = 30) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "runtime", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    return process.returncode, out.decode(), err.decode()


@pytest.fixture
async def robot_service(mqtt_broker, robot_name):
    async with Connection(mqtt_broker.url, robot=robot_name, service="robot") as connection:
        await connection.wait_connected(20)
        await Robot().serve(connection)
        yield connection


async def test_call_prints_the_result_as_json(mqtt_broker, robot_name, robot_service):
    common = ("--mqtt", mqtt_broker.url, "--robot", robot_name, "--timeout", "20")
    code, out, err = await runtime_cli("call", *common, "robot", "move", "[0.5]")
    assert (code, json.loads(out)) == (0, {"speed": 0.5, "side": "left"}), err
    code, out, err = await runtime_cli("call", *common, "robot", "move",
                                       '{"speed": 1, "side": "right"}')
    assert (code, json.loads(out)) == (0, {"speed": 1, "side": "right"}), err


async def test_call_errors_are_one_line_and_exit_1(mqtt_broker, robot_name, robot_service):
    common = ("--mqtt", mqtt_broker.url, "--robot", robot_name, "--timeout", "20")
    code, _, err = await runtime_cli("call", *common, "robot", "fail")
    assert code == 1
    assert err == "error: DeviceError: motor 7 is unplugged (uid='7')\n"
    code, _, err = await runtime_cli("call", *common, "robot", "move", '"x"')
    assert code == 1 and err.count("\n") == 1, err
    assert "expected a JSON list of arguments or an object" in err


async def test_call_without_a_broker_says_so():
    url = f"mqtt://127.0.0.1:{free_port()}"
    code, _, err = await runtime_cli("call", "--mqtt", url, "--timeout", "2", "executor",
                                     "get_mode")
    assert code == 1
    assert err == f"error: cannot connect to MQTT broker {url[7:]} within 2 s: " \
                  "connection refused\n"


async def test_monitor_prints_decoded_json_lines(mqtt_broker, robot_name):
    async with Connection(mqtt_broker.url, robot=robot_name) as conn:
        await conn.wait_connected(20)
        await conn.publish(conn.topics.match, Match(mode="auto", since=1.0), qos=1, retain=True)
        await conn.publish(conn.topics.log("raw"), b"\x01binary", qos=1, retain=True)
        await conn.publish(conn.topics.log("blob"), cbor2.dumps({"b": b"\x00\xff"}), qos=1,
                           retain=True)
        common = ("--mqtt", mqtt_broker.url, "--robot", robot_name, "--once", "--timeout", "20")
        code, out, err = await runtime_cli("monitor", *common, "match")
        assert code == 0, err
        assert json.loads(out) == {
            "topic": f"runtime/{robot_name}/match",
            "payload": {"mode": "auto", "alliance": None, "start_pos": None, "since": 1.0},
        }
        code, out, _ = await runtime_cli("monitor", *common, "log/raw")
        line = json.loads(out)
        assert line["raw"] == "0162696e617279"
        assert line["payload"] is None
        assert "bytes after its CBOR item" in line["error"]
        code, out, _ = await runtime_cli("monitor", *common, f"runtime/{robot_name}/log/blob")
        assert json.loads(out)["payload"] == {"b": "00ff"}
        assert encode(Match(mode="auto", since=1.0))  # the model is what the monitor decoded


async def test_monitor_once_times_out_clearly(mqtt_broker, robot_name):
    code, _, err = await runtime_cli("monitor", "--mqtt", mqtt_broker.url, "--robot", robot_name,
                                     "--once", "--timeout", "0.3", "nothing/here")
    assert code == 1
    assert f"no message on runtime/{robot_name}/nothing/here within 0.3 s" in err


async def test_mqtt_server_serves_until_sigterm(robot_name):
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "runtime", "mqtt-server", "--listen", f"127.0.0.1:{port}",
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await asyncio.to_thread(wait_listening, "127.0.0.1", port, 30)
        async with Connection(f"mqtt://127.0.0.1:{port}", robot=robot_name) as conn:
            await conn.wait_connected(20)
            assert await conn.publish(conn.topics.match, b"", qos=1) is True
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
