"""Is a robot of this name already running? ``runtime up`` asks before it touches anything.

Two stacks of one robot name fight: on one broker their services take each other's MQTT
sessions and answer each other's RPCs; on one machine they share ``/dev/shm`` names. Both end
in crash loops, so ``runtime up`` refuses instead, in one line naming the robot, the pids and
how to stop it. Two signs, checked in this order:

- on this machine: a parameter buffer of the robot whose owner still holds it (the owner lock of
  :mod:`runtime.buffer.segment`), and the processes that have it open;
- on the broker: retained ``service/<name>/status`` saying ``online`` whose service also answers
  a harmless read-only call now (a stale ``online``, left by a broker that never noticed a
  frozen client, does not block a start).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass, field

import psutil

from runtime.buffer.segment import SHM_DIR, _unowned, list_segments
from runtime.exception import MessageError, RPCError
from runtime.messages import ServiceStatus, decode
from runtime.remote import Client, Connection

#: A read-only call per service: any answer proves the service is alive.
PROBES = {"broker": "list_aliases", "device": "list", "executor": "get_mode"}
PROBE_TIMEOUT = 1.0


@dataclass
class Running:
    """What was found of a running robot; empty when there is none."""

    local_pids: list[int] = field(default_factory=list)
    services: dict[str, int] = field(default_factory=dict)  # answering service -> its pid
    segments: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.segments or self.services)


def live_segments(robot: str) -> list[str]:
    """The robot's shared-memory segments whose owner process is alive."""
    live = []
    for name in list_segments(robot):
        try:
            fd = os.open(SHM_DIR / name, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            if not _unowned(fd):
                live.append(name)
        finally:
            os.close(fd)
    return live


def holders(names: list[str]) -> list[int]:
    """Pids of the processes (of this user) that have any of the segments ``names`` open."""
    paths = {str(SHM_DIR / name) for name in names}
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in os.scandir(f"/proc/{entry.name}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(fd.path) in paths:
                        found.append(int(entry.name))
                        break
    return sorted(found)


def on_this_machine(robot: str) -> Running:
    """The robot's live buffers here, and who holds them."""
    segments = live_segments(robot)
    return Running(local_pids=holders(segments) if segments else [], segments=segments)


async def on_broker(connection: Connection) -> dict[str, int]:
    """Services of the connection's robot that say ``online`` and answer now: name -> pid."""
    online: dict[str, int] = {}

    def on_status(topic: str, payload: bytes) -> None:
        with contextlib.suppress(MessageError):
            name = str(connection.topics.parse(topic).service)
            status = decode(ServiceStatus, payload) if payload else None
            if status is not None and status.state == "online":
                online[name] = status.pid
            else:
                online.pop(name, None)

    filter_ = connection.topics.any_status
    # every retained status, without a guessed wait (a fixed 0.3 s missed them on a loaded
    # machine, and a second robot of the name started)
    await connection.subscribe_retained(filter_, on_status)
    await connection.unsubscribe(filter_, on_status)
    if not online:
        return {}
    client = Client(connection)

    async def answers(name: str) -> bool:
        try:
            await client.call(name, PROBES.get(name, "get_mode"), timeout=PROBE_TIMEOUT)
        except RPCError as exc:  # a remote error is an answer; only silence is not
            return getattr(exc, "remote_type", None) is not None
        return True

    alive = await asyncio.gather(*(answers(name) for name in online))
    return {name: pid for (name, pid), ok in zip(online.items(), alive, strict=True) if ok}


def supervisor(pids: list[int]) -> int | None:
    """The ``runtime up`` (on this machine) that runs any of ``pids``, if there is one."""
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            for parent in psutil.Process(pid).parents():
                command = parent.cmdline()
                if "up" in command and any("runtime" in part for part in command):
                    return parent.pid
    return None


def refusal(robot: str, url: str, running: Running) -> str:
    """The one line that says which robot runs where, and how to stop it."""
    up = supervisor([*running.services.values(), *running.local_pids])
    how = (f"`kill {up}` (its `runtime up`) or Ctrl-C in its terminal" if up is not None
           else None)
    if running.services:
        pids = ", ".join(f"{name} pid {pid}" for name, pid in sorted(running.services.items()))
        how = how or ("Ctrl-C in the terminal of its `runtime up`, or `docker-compose down` "
                      "for the containers")
        return (f"a robot named {robot!r} is already running on the broker {url} ({pids}): "
                f"stop it first ({how}) or choose another --robot")
    pids = " ".join(str(pid) for pid in running.local_pids)
    held = f" by pid {pids}" if pids else ""
    stop = how or (f"`kill {pids}`" if pids else "Ctrl-C in its terminal")
    return (f"a robot named {robot!r} is already running on this machine (its parameter "
            f"buffers in {SHM_DIR} are held{held}): stop it first ({stop}) or choose another "
            "--robot")
