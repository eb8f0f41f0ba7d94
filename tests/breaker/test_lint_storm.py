"""Many ``broker.lint`` requests at once must not start many pylints at once.

Found by the breaker: every ``lint`` request started its own pylint subprocess (seconds of CPU
and ~100 MB each), so a dozen requests at once (a client looping, editors re-linting on every
keystroke) started a dozen pylints and starved the broker service, whose event loop carries
the gamepad. Now one runs at a time; requests arriving meanwhile share the next run.

Real parts: a ``Broker`` serving RPC on the embedded MQTT broker, real pylint subprocesses,
counted with psutil.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import psutil
from runtime.remote import Client, Connection
from runtime.service.broker import Broker

from tests.support.brokers import TestBroker

PROGRAM = "def teleop_main():\n    Robot.set_value('koala', 'duty_cycle_a', undefined_name)\n"


def pylints() -> int:
    count = 0
    for child in psutil.Process().children(recursive=True):
        try:
            if "pylint" in " ".join(child.cmdline()):
                count += 1
        except psutil.Error:
            continue
    return count


async def test_a_dozen_lint_requests_at_once_run_one_pylint_at_a_time(
        amqtt_broker: TestBroker, robot_name: str, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "studentcode.py").write_text(PROGRAM)
    most = 0
    done = threading.Event()

    def watch() -> None:
        nonlocal most
        while not done.is_set():
            most = max(most, pylints())
            done.wait(0.02)

    async with Connection(amqtt_broker.url, robot=robot_name, service="broker") as service:
        broker = Broker(None, state_dir=state)
        await broker.serve(service)
        async with Connection(amqtt_broker.url, robot=robot_name) as connection:
            client = Client(connection)
            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            try:
                results = await asyncio.gather(*(client.call("broker", "lint", timeout=120)
                                                 for _ in range(12)))
            finally:
                done.set()
                watcher.join()
    assert most == 1, f"{most} pylints ran at once"
    for messages in results:  # every request got the program's messages
        assert any(m["symbol"] == "undefined-variable" for m in messages)
