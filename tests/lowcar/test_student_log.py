"""A lowcar device's LOG lines on the student console (``log/student``): which ones, named how,
and what a flooding or garbage-printing firmware gets through (services/device/studentlog.py).

The service tests run the device service on a real Mosquitto with virtual lowcar devices on its
socket (``DeviceRig``), and read ``log/student`` as a driver station does. Records leave the
service in order through one publisher, so "a line did not reach the console" is shown by a
later line that did.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from runtime.aliases import AliasFile, set_alias
from runtime.flood import LineBudget, RepeatCounter
from runtime.messages import LogRecord, Match, decode, encode
from runtime.protocol.uid import Uid
from runtime.service.device.studentlog import DeviceConsole, concern, render
from runtime.virtual_lowcar import VirtualLowcarDevice

from tests.device.rig import DeviceRig
from tests.resilience.device_stack import DeviceStack
from tests.support.brokers import MosquittoTestBroker
from tests.support.wait import wait_for_async

KOALA = Uid.lowcar(6, 1, 4660)
OTHER = Uid.lowcar(6, 1, 99)


class ConsoleRig:
    """A ``DeviceRig`` whose device service knows the aliases of ``state_dir``, plus what
    arrives on ``log/student``."""

    def __init__(self, rig: DeviceRig, state_dir: Path) -> None:
        self.rig = rig
        self.state_dir = state_dir
        self.records: list[LogRecord] = []

    async def start(self) -> ConsoleRig:
        connection = self.rig.client_connection
        await connection.subscribe(connection.topics.log("student"), self._on_record)
        return self

    def _on_record(self, topic: str, payload: bytes) -> None:
        self.records.append(decode(LogRecord, payload))

    def messages(self) -> list[str]:
        return [record.message for record in self.records]

    async def plug(self, uid: Uid, **options: object) -> VirtualLowcarDevice:
        device = VirtualLowcarDevice("KoalaBear", uid.value, **options)  # type: ignore[arg-type]
        task = asyncio.create_task(device.connect(self.rig.address))
        self.rig.devices.append((device, task))  # type: ignore[arg-type]
        await self.rig.online(device)  # type: ignore[arg-type]
        return device

    async def line(self, text: str) -> LogRecord:
        """Wait for the console record whose message is ``text``."""
        await wait_for_async(lambda: text in self.messages(),
                             message=lambda: f"{text!r} never reached the console: "
                                             f"{self.messages()}")
        return self.records[self.messages().index(text)]


@pytest.fixture
async def console(mosquitto_broker: MosquittoTestBroker, robot_name: str,
                  tmp_path: Path) -> AsyncIterator[ConsoleRig]:
    set_alias(tmp_path, "koala", str(KOALA))
    rig = DeviceRig(mosquitto_broker.url, robot_name)
    # a long repeat window: the test decides when a repeat run ends (by a different line)
    device_console = DeviceConsole(AliasFile(tmp_path).get, repeat_window=60.0)
    await rig.start(discovery_timeout=5.0, console=device_console)
    try:
        yield await ConsoleRig(rig, tmp_path).start()
    finally:
        await rig.stop()


# -- the device service ----------------------------------------------------------------------------

async def test_a_line_during_a_run_reaches_the_student_console_by_alias(console):
    koala = await console.plug(KOALA)
    other = await console.plug(OTHER)
    await console.rig.set_mode("auto")
    koala.say("PID tuned")
    record = await console.line("KoalaBear koala says: PID tuned")
    assert (record.level, record.logger) == ("info", "device.koala")
    assert record.context == {"uid": str(KOALA), "type": "KoalaBear", "alias": "koala"}
    other.say("no alias here")  # named by type and <type>_<id>, as students address it
    record = await console.line("KoalaBear 6_99 says: no alias here")
    assert record.logger == "device.6_99"

    set_alias(console.state_dir, "arm", str(OTHER))  # an alias set while it is plugged
    other.say("now I have one")
    await console.line("KoalaBear arm says: now I have one")


async def test_lines_that_do_not_concern_the_student_stay_in_the_device_log(console, caplog):
    caplog.set_level(logging.INFO, "runtime.service.device.lowcar")
    koala = await console.plug(KOALA)  # idle: its "ready" line is device talk
    koala.say("just chatter")
    koala.say("[ERROR] encoder unplugged")  # marked: the student needs it even while idle
    record = await console.line("KoalaBear koala says: [ERROR] encoder unplugged")
    assert record.level == "error"
    assert console.messages() == ["KoalaBear koala says: [ERROR] encoder unplugged"]
    assert "lowcar KoalaBear 6_4660 says: just chatter" in caplog.text
    assert "lowcar KoalaBear 6_4660 says: KoalaBear 6_4660 ready" in caplog.text

    await console.rig.set_mode("teleop")
    await console.rig.set_mode("estop")  # the run is over: chatter is device talk again
    koala.say("after the run", "Warn: battery low")
    record = await console.line("KoalaBear koala says: Warn: battery low")
    assert record.level == "warning"
    assert not any("after the run" in message for message in console.messages())


async def test_a_flood_is_collapsed_and_the_service_stays_responsive(console, caplog):
    caplog.set_level(logging.INFO, "runtime.service.device.lowcar")
    koala = await console.plug(KOALA)
    await console.rig.set_mode("teleop")
    koala.say(*["stuck in a loop"] * 300, "out of the loop")  # one burst
    await console.line("KoalaBear koala says: out of the loop")
    assert console.messages() == [
        "KoalaBear koala says: stuck in a loop",
        "KoalaBear koala repeated that 299 more times: stuck in a loop",
        "KoalaBear koala says: out of the loop"]

    before = len(console.records)
    lines = [f"count {n}" for n in range(400)]
    koala.say(*lines)  # 400 different lines in one burst
    dropped = "more lines of KoalaBear koala dropped"
    await wait_for_async(lambda: any(dropped in m for m in console.messages()[before:]))
    # The service answers and the device streams on (a read waits for its next DEVICE_DATA).
    assert str(KOALA) in {entry["uid"] for entry in await console.rig.call("list")}
    assert await console.rig.call("read", str(KOALA), ["velocity_a"]) == {"velocity_a": 0.0}

    def accounted() -> int:  # every line is shown or counted in a "dropped" line
        new = console.records[before:]
        shown = sum(r.message.startswith("KoalaBear koala says: count ") for r in new)
        return shown + sum(r.context.get("dropped", 0) for r in new)

    await wait_for_async(lambda: accounted() == len(lines), message=lambda: str(accounted()))
    assert len(console.records) - before < len(lines) // 10

    # The service log takes at most 20 of them a second; the next line after that second
    # brings the count (poll: say one more line until it does).
    counted = re.compile(r"lowcar KoalaBear 6_4660 sent (\d+) more LOG lines than the 20")

    def count_logged() -> re.Match[str] | None:
        koala.say("still here")
        return counted.search(caplog.text)

    found = await wait_for_async(count_logged, interval=0.2)
    logged = caplog.text.count("lowcar KoalaBear 6_4660 says: count ")
    assert logged < len(lines) and int(found[1]) > 0


async def test_garbage_text_is_rendered_clearly(console):
    koala = await console.plug(KOALA)
    await console.rig.set_mode("auto")
    koala.say(b"\xff\xfeok\x1b[2J\tend\r\n")  # not UTF-8, a terminal escape, a tab, a CRLF
    await console.line("KoalaBear koala says: \\xff\\xfeok\\x1b[2J\\tend")
    koala.say("23°C".encode())  # UTF-8 is shown as text
    await console.line("KoalaBear koala says: 23°C")


async def test_the_device_service_process_names_devices_by_the_aliases_of_its_state_dir(
        mosquitto_broker, robot_name):
    """``runtime service device`` as compose runs it: its ``--state-dir`` holds the aliases the
    broker service set."""
    stack = await DeviceStack(mosquitto_broker.url, robot_name).start()
    records: list[LogRecord] = []
    task: asyncio.Task[None] | None = None
    try:
        set_alias(stack.dir / "state", "koala", str(KOALA))
        watcher = stack.watcher
        assert watcher is not None
        await watcher.subscribe(watcher.topics.log("student"),
                                lambda topic, payload: records.append(decode(LogRecord, payload)))
        match = Match.model_validate({"mode": "teleop", "since": 0.0})
        await watcher.publish(watcher.topics.match, encode(match), qos=1, retain=True)
        koala = VirtualLowcarDevice("KoalaBear", KOALA.value)
        task = asyncio.create_task(koala.connect(stack.address))
        await wait_for_async(lambda: stack.announced(KOALA), timeout=30, message=stack.log)
        koala.say("hello from the firmware")
        await wait_for_async(lambda: "KoalaBear koala says: hello from the firmware"
                             in [record.message for record in records],
                             message=lambda: f"{[r.message for r in records]}\n{stack.log()}")
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await stack.stop()


# -- the policy, table-driven --------------------------------------------------------------------

@pytest.mark.parametrize(("mode", "text", "level"), [
    ("auto", "hello", "info"),
    ("teleop", "hello", "info"),
    ("idle", "hello", None),
    ("estop", "KoalaBear 6_4660 ready", None),
    ("idle", "ERROR: overcurrent", "error"),
    ("idle", "[fault] encoder", "error"),
    ("estop", "fatal", "error"),
    ("idle", "  warning - hot", "warning"),
    ("auto", "WARN hot", "warning"),
    ("idle", "errors are counted", None),  # a word that only starts like a mark
    ("idle", "no error", None),
])
def test_which_lines_concern_the_student(mode, text, level):
    assert concern(mode, text) == level


def test_render_escapes_and_bounds():
    assert render("ok\r\n") == "ok"
    assert render("a\x00b\x7f") == "a\\x00b\\x7f"
    long = render("x" * 250)
    assert long == "x" * 200 + "... (50 more characters)"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_repeat_counts_and_drops_are_reported_when_their_window_ends():
    clock = Clock()
    device_console = DeviceConsole(per_device=2, overall=3, repeat_window=5.0, clock=clock)

    def messages() -> list[str]:
        return [record.message for record in device_console.outbox]

    for _ in range(4):
        device_console.line(KOALA, "KoalaBear", "same", "auto")
    device_console.tick()
    assert messages() == ["KoalaBear 6_4660 says: same"]
    clock.now += 5.0
    device_console.tick()  # the repeat window ended: its count is reported without a new line
    assert messages()[-1] == "KoalaBear 6_4660 repeated that 3 more times: same"

    for n in range(5):  # 2 of 5 through (the device's budget)
        device_console.line(KOALA, "KoalaBear", f"line {n}", "auto")
    device_console.line(OTHER, "KoalaBear", "other", "auto")  # the overall budget: 3 a second
    device_console.line(Uid.lowcar(6, 1, 7), "KoalaBear", "third", "auto")
    clock.now += 1.0
    device_console.tick()
    assert messages()[2:] == [
        "KoalaBear 6_4660 says: line 0", "KoalaBear 6_4660 says: line 1",
        "KoalaBear 6_99 says: other",
        "... 3 more lines of KoalaBear 6_4660 dropped: the console shows at most 2 lines a "
        "second of one device",
        "... 1 more device lines dropped: the console shows at most 3 device lines a second"]


def test_a_stalled_broker_costs_lines_not_memory():
    """Nothing publishes (the broker stalled): the queue stops at 100 records, the rest are
    counted as lost."""
    device_console = DeviceConsole(per_device=1000, overall=1000)
    for n in range(150):
        device_console.line(KOALA, "KoalaBear", f"line {n}", "teleop")
    assert len(device_console.outbox) == 100 and device_console.lost == 50
    assert device_console.outbox[-1].message == "KoalaBear 6_4660 says: line 99"


def test_a_broken_aliases_file_still_names_the_device(tmp_path):
    (tmp_path / "aliases.json").write_text("{not json")
    device_console = DeviceConsole(AliasFile(tmp_path).get)
    device_console.line(KOALA, "KoalaBear", "hi", "auto")
    assert device_console.outbox[0].message == "KoalaBear 6_4660 says: hi"


def test_line_budget_and_repeat_counter():
    budget = LineBudget(2)
    assert [budget.admit(0.0) for _ in range(4)] == [True, True, False, False]
    assert budget.roll(0.5) == 0 and budget.due(0.5) is False  # the second goes on
    assert budget.due(1.0) and budget.roll(1.0) == 2 and budget.dropped_total == 2
    assert budget.admit(1.2) and budget.roll(1.3, force=True) == 0

    repeats: RepeatCounter[str] = RepeatCounter(window=5.0)
    assert repeats.repeat("a", 0.0) is False
    repeats.start("a", 0.0)
    assert repeats.repeat("a", 1.0) and repeats.repeat("a", 4.9)
    assert repeats.repeat("b", 4.9) is False and repeats.repeat("a", 5.0) is False
    assert repeats.expired(5.0) and repeats.take() == ("a", 2) and repeats.take() is None
