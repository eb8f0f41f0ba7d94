"""``runtime drive``: a small driver station in the terminal.

WASD move the left stick, the arrow keys the right stick, J K L I are the A B X Y buttons; every
key also goes out as keyboard input. Gamepad 0 and the keyboard are published at 20 Hz (and at
once on a change). Shift-T starts teleop, Shift-A autonomous, Enter goes idle, Space is the
emergency stop; leaving an estop takes the same key twice within ``CONFIRM_WINDOW`` s (one
stray Shift-T must not clear it). q or Ctrl-C quits, restoring the terminal and telling the
robot the input is gone (an empty payload on each input topic, so teleop stops the motors at
once rather than after the broker's 500 ms staleness limit).

The key map lives in the tables below (``AXIS_KEYS``, ``BUTTON_KEYS``, ``COMMANDS``); the
docs' key table is checked against them by a test. The first line shows the robot's status
(:mod:`runtime.cli.drive_status`): connection, round-trip time, mode, code state, devices,
red when the robot stops answering.

Terminals send no key-release events, only auto-repeat while a key is held: a key counts as held
for ``FIRST_HOLD`` s after it is pressed (longer than the usual auto-repeat delay), then for
``REPEAT_HOLD`` s after each repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
import termios
import time
import tty
from pathlib import Path
from typing import TextIO

import click

from runtime.buffer.inputs import AXES, BUTTONS, KEYS
from runtime.cli.common import connection_options, password_file_option
from runtime.cli.drive_status import PROBE_PERIOD, PROBE_TIMEOUT, RobotStatus
from runtime.cli.errors import fail, unreachable
from runtime.cli.main import main
from runtime.exception import MessageError, MQTTConnectionError, RPCError
from runtime.messages import GamepadInput, KeyboardInput, LogRecord, Match, decode
from runtime.remote import Client, Connection
from runtime.topics import parse_topic

PERIOD = 0.05
FIRST_HOLD = 0.7
REPEAT_HOLD = 0.15

#: Bit order of the keyboard bitmap and the gamepad buttons: one place, the input buffers'.
KEYBOARD_KEYS = KEYS
KEY_BITS = {key: 1 << bit for bit, key in enumerate(KEYBOARD_KEYS)}
GAMEPAD_BUTTONS = BUTTONS
#: Stick axes (index into ``GamepadInput.axes``: lx, ly, rx, ry) -> (key for +1, key for -1).
AXIS_KEYS = {
    "joystick_left_x": ("d", "a"), "joystick_left_y": ("w", "s"),
    "joystick_right_x": ("right_arrow", "left_arrow"),
    "joystick_right_y": ("up_arrow", "down_arrow"),
}
BUTTON_KEYS = {"j": "button_a", "k": "button_b", "l": "button_x", "i": "button_y"}
ESCAPES = {
    "\x1b[A": "up_arrow", "\x1b[B": "down_arrow", "\x1b[C": "right_arrow", "\x1b[D": "left_arrow",
    "\x1bOA": "up_arrow", "\x1bOB": "down_arrow", "\x1bOC": "right_arrow", "\x1bOD": "left_arrow",
}
COMMANDS = {"q": "quit", "\x03": "quit", "\x04": "quit", " ": "estop", "\r": "idle",
            "\n": "idle", "T": "teleop", "A": "auto"}
#: How the docs and the status line name the command keys.
KEY_LABELS = {" ": "Space", "\r": "Enter", "\n": "Enter", "T": "Shift-T", "A": "Shift-A",
              "q": "q", "\x03": "Ctrl-C", "\x04": "Ctrl-D"}
CONFIRM_WINDOW = 3.0
NOTE_TIME = 5.0
HELP = ("WASD: left stick, arrows: right stick, J K L I: A B X Y, "
        "Shift-T: teleop, Shift-A: auto, Enter: idle, Space: ESTOP, q: quit")


def parse_keys(data: str) -> list[str]:
    """Split terminal input into key names (``w``, ``up_arrow``) and command characters."""
    keys = []
    i = 0
    while i < len(data):
        sequence = data[i : i + 3]
        if sequence in ESCAPES:
            keys.append(ESCAPES[sequence])
            i += 3
            continue
        if data[i] == "\x1b":  # another escape sequence: skip it whole
            i += 1
            while i < len(data) and not data[i].isalpha() and data[i] != "~":
                i += 1
            i += 1
            continue
        keys.append(data[i])
        i += 1
    return keys


class DriverState:
    """Which keys count as held, and the gamepad/keyboard input they make."""

    def __init__(self) -> None:
        self.held: dict[str, float] = {}
        #: keys pressed since the last publish: held until sent once, so a tap is never lost
        #: when this process is descheduled for longer than its hold (a loaded laptop)
        self.unsent: set[str] = set()

    def press(self, key: str, now: float) -> None:
        """A key arrived (first press or auto-repeat)."""
        self.held[key] = now + (REPEAT_HOLD if key in self.held else FIRST_HOLD)
        self.unsent.add(key)

    def expire(self, now: float) -> bool:
        """Release keys whose hold ran out (once sent); True if any was released."""
        gone = [key for key, until in self.held.items()
                if until <= now and key not in self.unsent]
        for key in gone:
            del self.held[key]
        return bool(gone)

    def published(self, keys: set[str]) -> None:
        """``keys`` (held when the input was built) went out: from now on they may expire."""
        self.unsent -= keys

    def _axis(self, plus: str, minus: str) -> float:
        return float((plus in self.held) - (minus in self.held))

    def gamepad(self, now: float) -> GamepadInput:
        buttons = 0
        for key, name in BUTTON_KEYS.items():
            if key in self.held:
                buttons |= 1 << GAMEPAD_BUTTONS.index(name)
        axes = [self._axis(*AXIS_KEYS[name]) for name in AXES]
        return GamepadInput(buttons=buttons, axes=axes, ts=now)

    def keyboard(self, now: float) -> KeyboardInput:
        keys = 0
        for key in self.held:
            keys |= KEY_BITS.get(key.lower(), 0)
        return KeyboardInput(keys=keys, ts=now)


class Driver:
    """The driver station loop: terminal keys in, input messages and mode calls out."""

    def __init__(self, connection: Connection, fd: int, out: TextIO, index: int = 0) -> None:
        self.connection = connection
        self.client = Client(connection)
        self.fd = fd
        self.out = out
        self.index = index
        self.state = DriverState()
        self.status = RobotStatus()
        self.note = ""
        self.noted = 0.0  # when the note was set: it is shown for NOTE_TIME s
        self.confirm: tuple[str, float] | None = None  # (command, until): clearing an estop
        self.colour = "NO_COLOR" not in os.environ
        self.quit = asyncio.Event()
        self.changed = asyncio.Event()

    def on_input(self) -> None:
        try:
            data = os.read(self.fd, 1024).decode(errors="replace")
        except OSError:
            data = ""
        if not data:  # the terminal went away
            self.quit.set()
            return
        now = time.time()
        for key in parse_keys(data):
            command = COMMANDS.get(key)
            if command == "quit":
                self.quit.set()
            elif command is not None:
                self.command(command, KEY_LABELS.get(key, key), time.monotonic())
            elif key.lower() in KEY_BITS or key in BUTTON_KEYS:
                self.state.press(key.lower(), now)
        self.changed.set()

    def command(self, command: str, key: str, now: float) -> None:
        """A mode key; leaving an estop needs the same key again within CONFIRM_WINDOW s."""
        clearing = self.status.mode == "estop" and command != "estop"
        if clearing and not (self.confirm and self.confirm[0] == command
                             and now <= self.confirm[1]):
            self.confirm = (command, now + CONFIRM_WINDOW)
            self.say(f"ESTOP is on: {key} again clears it")
            return
        self.confirm = None
        self.connection.spawn(self.set_mode(command, clear_estop=clearing))

    def say(self, note: str) -> None:
        """Show ``note`` in place of the sticks for NOTE_TIME s."""
        self.note, self.noted = note, time.monotonic()
        self.changed.set()

    def on_match(self, topic: str, payload: bytes) -> None:
        with contextlib.suppress(MessageError):
            match = decode(Match, payload)
            self.status.on_match(match.mode, match.since)
            self.changed.set()

    def on_student_log(self, topic: str, payload: bytes) -> None:
        with contextlib.suppress(MessageError):
            record = decode(LogRecord, payload)
            self.status.on_student_log(record.level, record.message, record.ts)
            self.changed.set()

    def on_info(self, topic: str, payload: bytes) -> None:
        with contextlib.suppress(MessageError):
            self.status.on_device(str(parse_topic(topic).uid), bool(payload))
            self.changed.set()

    async def set_mode(self, mode: str, clear_estop: bool = False) -> None:
        kwargs = {"clear_estop": True} if clear_estop else {}
        try:
            try:
                await self.client.request("executor", "set_mode", [mode], kwargs, timeout=3.0)
            except RPCError as exc:  # an executor from before the estop latch: no clear_estop
                if not (kwargs and "clear_estop" in exc.message):
                    raise
                await self.client.call("executor", "set_mode", mode, timeout=3.0)
            self.say(f"mode {mode} set" + (" (estop cleared)" if clear_estop else ""))
        except (RPCError, MQTTConnectionError) as exc:
            self.say(f"mode {mode} failed: {exc.message}")
        self.changed.set()

    async def probe(self) -> None:
        """Ask the executor for its mode every PROBE_PERIOD s: alive, round-trip time, mode."""
        while True:
            started = time.monotonic()
            self.status.connected = self.connection.connected.is_set()
            try:
                match = await self.client.call("executor", "get_mode", timeout=PROBE_TIMEOUT)
            except (RPCError, MQTTConnectionError):
                pass
            else:
                now = time.monotonic()
                self.status.answered(now, now - started, match)
            self.changed.set()
            await asyncio.sleep(max(PROBE_PERIOD - (time.monotonic() - started), 0.05))

    def render(self, pad: GamepadInput) -> None:
        """One line: the robot's status, then the sticks, buttons and the last note."""
        pressed = "".join(
            name[-1].upper() for bit, name in enumerate(GAMEPAD_BUTTONS[:4])
            if pad.buttons & (1 << bit)
        )
        lx, ly, rx, ry = pad.axes
        now = time.monotonic()
        self.status.connected = self.connection.connected.is_set()
        width = shutil.get_terminal_size((100, 24)).columns - 1
        if self.note and now - self.noted > NOTE_TIME:
            self.note = ""
        controls = (f" | {self.note}" if self.note  # a refused mode, an estop to confirm
                    else f" | L({lx:+.0f},{ly:+.0f}) R({rx:+.0f},{ry:+.0f}) [{pressed:<4}]")
        plain = self.status.line(now, colour=False)
        coloured = self.status.line(now, colour=self.colour)
        line = coloured + controls[: max(width - len(plain), 0)]
        with contextlib.suppress(OSError, ValueError):
            self.out.write("\r\033[K" + line)
            self.out.flush()

    async def run(self) -> None:
        topics = self.connection.topics
        await self.connection.subscribe(topics.match, self.on_match)
        await self.connection.subscribe(topics.log("student"), self.on_student_log)
        await self.connection.subscribe(topics.any_device_info, self.on_info)
        prober = asyncio.ensure_future(self.probe())
        loop = asyncio.get_running_loop()
        loop.add_reader(self.fd, self.on_input)
        try:
            while not self.quit.is_set():
                now = time.time()
                self.state.expire(now)
                pad, sent = self.state.gamepad(now), set(self.state.held)
                await self.connection.publish(topics.gamepad(self.index), pad)
                await self.connection.publish(topics.keyboard, self.state.keyboard(now))
                self.state.published(sent)
                self.render(pad)
                self.changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake(), PERIOD)
        finally:
            prober.cancel()
            loop.remove_reader(self.fd)
            # An empty payload says "this input is gone": teleop stops the motors at once.
            await self.connection.publish(topics.gamepad(self.index), b"", qos=1, timeout=2.0)
            await self.connection.publish(topics.keyboard, b"", qos=1, timeout=2.0)

    async def _wake(self) -> None:
        """Until a key changes something or quit is asked for."""
        waiters = [asyncio.ensure_future(self.changed.wait()),
                   asyncio.ensure_future(self.quit.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()


async def drive_robot(mqtt: str, robot: str, password_file: Path | None, index: int,
                      fd: int, out: TextIO) -> None:
    """Connect, then drive until q, Ctrl-C, SIGTERM or the terminal closing."""
    async with Connection(mqtt, robot=robot, password_file=password_file,
                          connect_timeout=0) as connection:
        await connection.wait_connected(10.0)
        driver = Driver(connection, fd, out, index)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(signum, driver.quit.set)
        out.write(f"driving {robot} on {connection.address} (gamepad {index})\r\n{HELP}\r\n")
        await driver.run()


@main.command()
@click.option("--gamepad", "index", type=click.IntRange(0, 3), default=0, show_default=True,
              help="Which gamepad this terminal is.")
@password_file_option
@connection_options
def drive(index: int, password_file: Path | None, mqtt: str, robot: str) -> None:
    """Drive the robot from the keyboard (a small terminal driver station)."""
    fd = sys.stdin.fileno()
    if not os.isatty(fd):
        fail("runtime drive needs a terminal (its input is not a TTY)")
    logging.getLogger("runtime.remote").setLevel(logging.ERROR)
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        asyncio.run(drive_robot(mqtt, robot, password_file, index, fd, sys.stdout))
    except MQTTConnectionError as exc:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        sys.stdout.write("\n")
        unreachable(exc)
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
    click.echo("\nbye")
