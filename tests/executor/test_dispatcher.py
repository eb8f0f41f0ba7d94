"""The control process's Dispatcher in-process on a real broker (no ACL: the role comes from
the topic alone): roles the executor refuses itself, field presence, get_mode, crash sentences.
The student process behind it is real too (tests/executor/test_student_process.py covers runs).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from runtime.buffer import BufferStore
from runtime.exception import RPCError
from runtime.messages import encode
from runtime.remote import Client, Connection
from runtime.service.executor import Dispatcher
from runtime.service.executor.dispatcher import crash_sentence

from tests.support.wait import wait_for_async


@contextlib.asynccontextmanager
async def control(broker, robot: str, state: Path) -> AsyncIterator[Dispatcher]:
    async with Connection(broker.url, robot=robot, service="executor") as connection:
        with BufferStore(robot) as buffers:
            (state / "studentcode.py").write_text("def teleop_main():\n    pass\n")
            dispatcher = Dispatcher(buffers, student_code=state / "studentcode.py",
                                    state_dir=state)
            await dispatcher.serve(connection)
            try:
                yield dispatcher
            finally:
                await dispatcher.close()


async def test_other_logins_may_neither_change_the_mode_nor_upload(amqtt_broker, robot_name,
                                                                    tmp_path):
    async with (control(amqtt_broker, robot_name, tmp_path) as dispatcher,
                Connection(amqtt_broker.url, robot=robot_name) as link):
        monitor = Client(link, role="monitor")
        with pytest.raises(RPCError, match="the login 'monitor' may not change the mode"):
            await monitor.call("executor", "set_mode", "idle")
        with pytest.raises(RPCError, match="the login 'monitor' may not upload"):
            await monitor.call("executor", "upload", "def teleop_main():\n    pass\n")
        assert (await monitor.call("executor", "get_mode"))["mode"] == "idle"  # reading is fine
        assert dispatcher.match.mode == "idle"
        assert (tmp_path / "studentcode.py").read_text() == "def teleop_main():\n    pass\n"


async def test_field_presence_online_offline_empty_and_garbage(amqtt_broker, robot_name,
                                                               tmp_path):
    async with (control(amqtt_broker, robot_name, tmp_path) as dispatcher,
                Connection(amqtt_broker.url, robot=robot_name) as link):
        client, presence = Client(link), link.topics.field_presence
        for payload, connected in ((encode({"state": "online", "ts": 1.0}), True),
                                   (b"", False),
                                   (encode({"state": "online", "ts": 2.0}), True),
                                   (encode({"state": "offline", "ts": 3.0}), False)):
            await link.publish(presence, payload, qos=1, retain=True)
            await wait_for_async(lambda c=connected: dispatcher.field_connected is c)
            assert (await client.call("executor", "get_mode"))["field_connected"] is connected
        await link.publish(presence, b"\xff garbage", qos=1, retain=True)  # logged, ignored
        await link.publish(presence, encode({"state": "online", "ts": 4.0}), qos=1)
        await wait_for_async(lambda: dispatcher.field_connected)
        await link.publish(presence, b"", qos=1, retain=True)


@pytest.mark.parametrize("notes, status, sentence", [
    (["your program ended the process with os._exit(1) in teleop_main, line 12"], 256,
     "your program ended the process with os._exit(1) in teleop_main, line 12: the robot set "
     "the motors to 0 and keeps running; start teleop again to rerun it"),
    ([], signal.SIGSEGV, "your program's process was killed by SIGSEGV: the robot"),
    ([], signal.SIGKILL, "killed by SIGKILL (from outside, or out of memory)"),
    ([], 3 << 8, "your program's process ended with exit code 3"),
    ([], None, "its parent process was killed"),
])
def test_crash_sentences(notes, status, sentence):
    text = crash_sentence(notes, status, "teleop")
    assert sentence in text and "\n" not in text
    assert text.endswith("start teleop again to rerun it")
    if status is not None and notes:
        assert os.WIFEXITED(status)


async def test_the_estop_latch_is_kept_before_the_estop_is_stated(amqtt_broker, robot_name,
                                                                     tmp_path):
    """The device service stops on the stated estop at once: an executor killed right after
    stating it must already have kept the latch, or it would come back idle and unlatched."""
    async with (control(amqtt_broker, robot_name, tmp_path) as dispatcher,
                Connection(amqtt_broker.url, robot=robot_name) as link):
        stated: list[tuple[str, bool]] = []
        dispatcher.state_mode = lambda mode: stated.append(
            (mode, (tmp_path / "estop.latched").exists()))
        client = Client(link)
        await client.call("executor", "set_mode", "estop")
        await client.call("executor", "set_mode", "idle", clear_estop=True)
        await client.call("executor", "set_mode", "auto")
        assert stated == [("estop", True), ("idle", False), ("auto", False)]


async def test_a_latched_estop_outlives_a_restart_of_the_executor(amqtt_broker, robot_name,
                                                                   tmp_path):
    async with (control(amqtt_broker, robot_name, tmp_path) as dispatcher,
                Connection(amqtt_broker.url, robot=robot_name) as link):
        await Client(link).call("executor", "set_mode", "estop")
        assert dispatcher.latched and (tmp_path / "estop.latched").exists()
    # a new executor (restarted after a crash, or the robot rebooted) is still in estop
    async with (control(amqtt_broker, robot_name, tmp_path) as dispatcher,
                Connection(amqtt_broker.url, robot=robot_name) as link):
        client = Client(link)
        assert dispatcher.match.mode == "estop" and dispatcher.latched
        with pytest.raises(RPCError, match="estop is latched"):
            await client.call("executor", "set_mode", "teleop")
        await client.call("executor", "set_mode", "idle", clear_estop=True)
        assert not dispatcher.latched and not (tmp_path / "estop.latched").exists()
    async with control(amqtt_broker, robot_name, tmp_path) as dispatcher:
        assert dispatcher.match.mode == "idle" and not dispatcher.latched


async def test_match_is_published_again_after_the_broker_lost_it(mosquitto_broker, robot_name,
                                                                 tmp_path):
    from runtime.messages import Match

    async with control(mosquitto_broker, robot_name, tmp_path) as dispatcher:
        async with Connection(mosquitto_broker.url, robot=robot_name) as link:
            await Client(link).call("executor", "set_mode", "teleop")
        mosquitto_broker.stop()  # retained messages gone with it (no persistence)
        mosquitto_broker.start()
        seen: list[Match | None] = []
        async with Connection(mosquitto_broker.url, robot=robot_name) as link:
            await link.subscribe_typed(link.topics.match, Match,
                                       lambda topic, match: seen.append(match), qos=1)
            await wait_for_async(lambda: seen and seen[-1] is not None
                                 and seen[-1].mode == "teleop")
        assert dispatcher.match.mode == "teleop"
