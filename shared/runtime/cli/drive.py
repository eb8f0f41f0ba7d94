"""``runtime drive``: a small driver station in the terminal.

WASD move the left stick, the arrow keys the right stick, J K L I are the A B X Y buttons; every
key also goes out as keyboard input. Gamepad 0 and the keyboard are published at 20 Hz (and at
once on a change). Shift-T starts teleop, Shift-A autonomous, Enter goes idle, Space is the
emergency stop; q or Ctrl-C quits, restoring the terminal and telling the robot the input is
gone (an empty payload on each input topic, so teleop stops the motors at once rather than after
the broker's 500 ms staleness limit).

Terminals send no key-release events, only auto-repeat while a key is held: a key counts as held
for ``FIRST_HOLD`` s after it is pressed (longer than the usual auto-repeat delay), then for
``REPEAT_HOLD`` s after each repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import string
import sys
import termios
import time
import tty
from pathlib import Path
from typing import TextIO

import click

from runtime.cli.common import connection_options
from runtime.cli.main import main
from runtime.exception import MessageError, MQTTConnectionError, RPCError
from runtime.messages import GamepadInput, KeyboardInput, Match, decode
from runtime.remote import Client, Connection

PERIOD = 0.05
FIRST_HOLD = 0.7
REPEAT_HOLD = 0.15

#: Bit order of the keyboard bitmap (docs/protocol.md, driver-station inputs).
KEYBOARD_KEYS = (
    *string.ascii_lowercase, *"1234567890", ",", ".", "/", ";", "'", "[", "]",
    "left_arrow", "right_arrow", "up_arrow", "down_arrow",
)
KEY_BITS = {key: 1 << bit for bit, key in enumerate(KEYBOARD_KEYS)}
#: Bit order of the gamepad buttons (docs/protocol.md, driver-station inputs).
GAMEPAD_BUTTONS = (
    "button_a", "button_b", "button_x", "button_y", "l_bumper", "r_bumper", "l_trigger",
    "r_trigger", "button_back", "button_start", "l_stick", "r_stick", "dpad_up", "dpad_down",
    "dpad_left", "dpad_right", "button_xbox",
)
BUTTON_KEYS = {"j": "button_a", "k": "button_b", "l": "button_x", "i": "button_y"}
ESCAPES = {
    "\x1b[A": "up_arrow", "\x1b[B": "down_arrow", "\x1b[C": "right_arrow", "\x1b[D": "left_arrow",
    "\x1bOA": "up_arrow", "\x1bOB": "down_arrow", "\x1bOC": "right_arrow", "\x1bOD": "left_arrow",
}
COMMANDS = {"q": "quit", "\x03": "quit", "\x04": "quit", " ": "estop", "\r": "idle",
            "\n": "idle", "T": "teleop", "A": "auto"}
HELP = ("WASD: left stick, arrows: right stick, J K L I: A B X Y, "
        "T: teleop, A: auto, Enter: idle, Space: ESTOP, q: quit")


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

    def press(self, key: str, now: float) -> None:
        """A key arrived (first press or auto-repeat)."""
        self.held[key] = now + (REPEAT_HOLD if key in self.held else FIRST_HOLD)

    def expire(self, now: float) -> bool:
        """Release keys whose hold ran out; True if any was released."""
        gone = [key for key, until in self.held.items() if until <= now]
        for key in gone:
            del self.held[key]
        return bool(gone)

    def _axis(self, plus: str, minus: str) -> float:
        return float((plus in self.held) - (minus in self.held))

    def gamepad(self, now: float) -> GamepadInput:
        buttons = 0
        for key, name in BUTTON_KEYS.items():
            if key in self.held:
                buttons |= 1 << GAMEPAD_BUTTONS.index(name)
        axes = [self._axis("d", "a"), self._axis("w", "s"),
                self._axis("right_arrow", "left_arrow"), self._axis("up_arrow", "down_arrow")]
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
        self.mode = "?"
        self.note = ""
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
                self.connection.spawn(self.set_mode(command))
            elif key.lower() in KEY_BITS or key in BUTTON_KEYS:
                self.state.press(key.lower(), now)
        self.changed.set()

    def on_match(self, topic: str, payload: bytes) -> None:
        with contextlib.suppress(MessageError):
            self.mode = decode(Match, payload).mode
            self.changed.set()

    async def set_mode(self, mode: str) -> None:
        try:
            await self.client.call("executor", "set_mode", mode, timeout=3.0)
            self.note = f"mode {mode} set"
        except (RPCError, MQTTConnectionError) as exc:
            self.note = f"mode {mode} failed: {exc.message}"
        self.changed.set()

    def render(self, pad: GamepadInput) -> None:
        pressed = " ".join(
            name[-1] for bit, name in enumerate(GAMEPAD_BUTTONS[:4]) if pad.buttons & (1 << bit)
        )
        lx, ly, rx, ry = pad.axes
        line = (f"[{self.mode:>6}] left ({lx:+.0f},{ly:+.0f}) right ({rx:+.0f},{ry:+.0f}) "
                f"buttons [{pressed:<7}] {self.note}")
        with contextlib.suppress(OSError, ValueError):
            self.out.write("\r\033[K" + line[:200])
            self.out.flush()

    async def run(self) -> None:
        topics = self.connection.topics
        await self.connection.subscribe(topics.match, self.on_match)
        loop = asyncio.get_running_loop()
        loop.add_reader(self.fd, self.on_input)
        try:
            while not self.quit.is_set():
                now = time.time()
                self.state.expire(now)
                pad = self.state.gamepad(now)
                await self.connection.publish(topics.gamepad(self.index), pad)
                await self.connection.publish(topics.keyboard, self.state.keyboard(now))
                self.render(pad)
                self.changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake(), PERIOD)
        finally:
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
@click.option("--password-file", type=click.Path(path_type=Path), default=None,
              envvar="RUNTIME_PASSWORD_FILE", help="File holding the MQTT password.")
@connection_options
def drive(index: int, password_file: Path | None, mqtt: str, robot: str) -> None:
    """Drive the robot from the keyboard (a small terminal driver station)."""
    fd = sys.stdin.fileno()
    if not os.isatty(fd):
        click.echo("error: runtime drive needs a terminal (its input is not a TTY)", err=True)
        sys.exit(1)
    logging.getLogger("runtime.remote").setLevel(logging.ERROR)
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        asyncio.run(drive_robot(mqtt, robot, password_file, index, fd, sys.stdout))
    except MQTTConnectionError as exc:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        click.echo(f"\nerror: {exc.message} (is the robot running?)", err=True)
        sys.exit(1)
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
    click.echo("\nbye")
