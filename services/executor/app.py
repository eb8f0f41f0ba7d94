"""``main(config)``: run the executor's control process until SIGINT/SIGTERM
(``runtime service executor``).

The control process is an ordinary asyncio service (MQTT, RPC, modes, safety) like the others:
student code runs in a student process per run (``dispatcher.py``, ``zygote.py``, ``child.py``),
so nothing a student writes can hold up this loop. On the way out the student process is
killed, the motors are set to 0 and the zygote ends.
"""

from __future__ import annotations

import asyncio
import logging

from runtime.buffer import BufferStore
from runtime.buffer.liveness import LivenessBeat, LivenessBuffer, liveness_name, start_liveness
from runtime.buffer.segment import Segment
from runtime.config import ServiceConfig
from runtime.exception import BufferStoreError
from runtime.remote import Connection, MQTTLogHandler
from runtime.service.executor.dispatcher import Dispatcher, options_for
from runtime.servicemain import read_options, run_service, unless_stopped

log = logging.getLogger("runtime.service.executor")


def build(config: ServiceConfig, buffers: BufferStore) -> Dispatcher:
    """The dispatcher for ``config``, with the robot's options."""
    options = read_options(config, log)
    return Dispatcher(buffers, student_code=config.student_code_path,
                      state_dir=config.state_dir, **options_for(options))


async def serve(config: ServiceConfig, stop: asyncio.Event) -> None:
    """The executor service on ``config`` until ``stop`` is set."""
    buffers = BufferStore(config.robot)
    buffers.reclaim()
    dispatcher = build(config, buffers)
    try:
        beat = beat_for(buffers)
    except BufferStoreError:
        buffers.close()
        raise
    dispatcher.state_mode = beat.state_mode
    beat.state_mode(str(dispatcher.match.mode))
    try:
        async with Connection(config.mqtt, robot=config.robot, service="executor",
                              password_file=config.password_file) as connection:
            logs = MQTTLogHandler(connection, "executor")
            logs.addFilter(lambda record: not record.name.startswith("student"))  # own topic
            logs.install()
            try:
                await dispatcher.serve(connection)
                # "online" means ready; waits for the broker, saying so
                if await unless_stopped(connection.go_online(), stop):
                    log.info("executor service ready (robot %s, student code %s, period %g s)",
                             config.robot, config.student_code_path, dispatcher.period)
                await stop.wait()
            finally:
                await dispatcher.close()
                logs.uninstall()
    finally:
        beat.stop()
        buffers.close()


def beat_for(buffers: BufferStore) -> LivenessBeat:
    """Start the liveness counter on this (the control process's) event loop: the device
    service stops the motors when it stops moving (frozen, stuck, killed). The student
    processes never touch it, so a stuck student cannot fake it.

    ``BufferStoreError`` if another executor of this robot owns it (frozen ones included):
    this one then does not start. Beside it, it would run student code and answer every RPC
    too, and the device service would follow only the other's counter and stated mode (so
    once the other ended, every mode this one accepted would leave the motors held)."""
    try:
        return start_liveness(buffers, asyncio.get_running_loop())
    except BufferStoreError as exc:
        owner = _owner_pid(buffers.robot)
        raise BufferStoreError(
            f"another executor of robot {buffers.robot} is running"
            + (f" (pid {owner})" if owner else "")
            + ": it owns the executor's liveness segment; stop it first (two executors would "
            "both run student code, and the device service follows only one)",
            robot=buffers.robot, pid=owner,
        ) from exc


def _owner_pid(robot: str) -> int | None:
    """The pid recorded by the owner of the robot's liveness segment (None if unreadable)."""
    try:
        buffer = LivenessBuffer(Segment.attach(liveness_name(robot), "executor liveness"))
    except BufferStoreError:
        return None
    try:
        return buffer.owner_pid or None
    finally:
        buffer.close()


def main(config: ServiceConfig) -> int:
    """Run the executor service until SIGINT/SIGTERM; the exit code."""
    return run_service(serve, config)
