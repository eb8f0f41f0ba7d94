"""``runtime drive`` on a real pseudo-terminal: keys become input messages, q restores all."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import termios

from runtime.messages import loads
from runtime.remote import Connection

from tests.support.wait import wait_for_async


async def test_keys_drive_the_gamepad_and_quitting_restores_the_terminal(
    amqtt_broker, robot_name
) -> None:
    seen: list[dict | None] = []
    async with Connection(amqtt_broker.url, robot=robot_name) as connection:
        await connection.subscribe(
            connection.topics.gamepad(0), lambda t, p: seen.append(loads(p) if p else None)
        )
        master, slave = os.openpty()
        before = termios.tcgetattr(slave)
        loop = asyncio.get_running_loop()
        screen = bytearray()
        loop.add_reader(master, lambda: screen.extend(os.read(master, 4096)))
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "runtime", "drive", "--mqtt", amqtt_broker.url,
            "--robot", robot_name, stdin=slave, stdout=slave, stderr=slave,
        )
        try:
            def last() -> dict | None:
                return seen[-1] if seen else None

            await wait_for_async(lambda: last() and last()["axes"] == [0, 0, 0, 0], 20)
            os.write(master, b"w")
            await wait_for_async(lambda: last() and last()["axes"][1] == 1.0)
            os.write(master, b"\x1b[Cj")
            await wait_for_async(
                lambda: last() and last()["axes"][2] == 1.0 and last()["buttons"] & 1
            )
            # No key-release events in a terminal: a key is let go once its hold runs out.
            await wait_for_async(lambda: last() and last()["axes"] == [0, 0, 0, 0])
            assert b"WASD: left stick" in screen
            os.write(master, b"q")
            assert await asyncio.wait_for(process.wait(), 20) == 0
            await wait_for_async(lambda: seen[-1] is None)  # "input gone"
            assert termios.tcgetattr(slave) == before
        finally:
            loop.remove_reader(master)
            if process.returncode is None:
                process.kill()
                await process.wait()
            for fd in (master, slave):
                with contextlib.suppress(OSError):
                    os.close(fd)


def test_drive_needs_a_terminal(amqtt_broker, robot_name) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "runtime", "drive", "--mqtt", amqtt_broker.url],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "error: runtime drive needs a terminal (its input is not a TTY)"
