"""``Broker``: the broker service's RPC interface and the parts it coordinates.

The broker service stands between clients (driver station, field control, monitors) and the
other services: driver input goes into the shared-memory gamepad/keyboard buffers
(:mod:`.inputs`), device values come out of the device buffers as ``device/<uid>/data``
(:mod:`.updates`), and the robot's settings live here: options (``runtime.options``), aliases
(``runtime.aliases``) and the student-code linter (:mod:`.lint`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from runtime import aliases
from runtime.lint import known_aliases
from runtime.options import Options, get_option, load_options, set_options
from runtime.remote import Connection, Handler, rpc
from runtime.service.broker.inputs import InputBridge
from runtime.service.broker.lint import LintRuns
from runtime.service.broker.updates import DataPublisher
from runtime.studentconsole import ConsoleHistory

log = logging.getLogger(__name__)


class Broker(Handler):
    """The broker service: input bridge, data publisher, options, aliases, lint.

    ``Broker(buffers, state_dir=..., student_code=...)``; ``await broker.start(connection)``
    serves ``rpc/broker/*`` and starts moving input and data; ``await broker.stop()``.
    ``inputs`` and ``updates`` can be given to swap a part for another real one in tests.
    """

    service_name = "broker"

    def __init__(
        self,
        buffers: Any,
        *,
        state_dir: Path,
        student_code: Path | None = None,
        options: Options | None = None,
        inputs: InputBridge | None = None,
        updates: DataPublisher | None = None,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.student_code = Path(student_code or self.state_dir / "studentcode.py")
        self.options = options or Options()
        self.inputs = inputs or InputBridge(buffers)
        self.updates = updates or DataPublisher(buffers, rate=self.options.data_rate)
        self.history = ConsoleHistory()  # for `runtime console --since`
        self._lint = LintRuns()  # one pylint at a time, however many ask

    async def start(self, connection: Connection) -> None:
        """Serve RPC, take driver input, publish device data (returns once subscribed)."""
        await connection.subscribe(connection.topics.any_log, self.history.on_log)
        await self.serve(connection)
        await self.inputs.start(connection)
        await self.updates.start(connection)

    async def stop(self) -> None:
        """Stop publishing and mark every input disconnected (the robot must not drive on)."""
        await self.updates.stop()
        await self.inputs.stop()

    # -- options ---------------------------------------------------------------------------
    @rpc(blocking=True)
    def get_option(self, option: str | None = None) -> Any:
        """One option's stored value, or all options (what the next start will use)."""
        return get_option(load_options(self.state_dir), option)

    @rpc(blocking=True)
    def set_option(self, options: dict[str, Any]) -> dict[str, Any]:
        """Validate and store ``{name: value}`` atomically; applied at the next start.

        Returns every option as it will be at the next start.
        """
        stored = set_options(self.state_dir, options)
        log.info("options set: %s (applied at the next start)", options)
        return stored.model_dump()

    # -- aliases ---------------------------------------------------------------------------
    @rpc(blocking=True)
    def set_alias(self, name: str, uid: str) -> dict[str, str]:
        """Let student code call device ``uid`` by ``name``; returns every alias."""
        result = aliases.set_alias(self.state_dir, name, uid)
        log.info("alias %s -> %s", name, result[name])
        return result

    @rpc(blocking=True)
    def del_alias(self, name: str) -> dict[str, str]:
        """Forget alias ``name``; returns the remaining aliases."""
        result = aliases.del_alias(self.state_dir, name)
        log.info("alias %s deleted", name)
        return result

    @rpc(blocking=True)
    def list_aliases(self) -> dict[str, str]:
        """Every alias: ``{name: uid}``."""
        return aliases.load_aliases(self.state_dir)

    # -- student code ----------------------------------------------------------------------
    @rpc
    async def lint(self) -> list[dict[str, Any]]:
        """pylint's messages on the student program (JSON form, no score), with the robot
        checks (``robot-*``) against this robot's aliases."""
        return await self._lint.lint(self.student_code, aliases=known_aliases(self.state_dir))

    @rpc
    def console(self, since: float | None = None) -> list[dict[str, Any]]:
        """The student console's records since ``since`` (UNIX s; None: all kept, up to an
        hour): ``log/student`` and the other services' student-relevant lines."""
        return self.history.since(since)

    # -- device values -----------------------------------------------------------------------
    @rpc
    def values(self) -> dict[str, dict[str, Any]]:
        """Every device's readable params as last published on ``device/<uid>/data``:
        ``{uid: {param: value}}``. ``data`` only carries changes, so a client that just
        connected (the driver station) asks here once for the whole picture."""
        return {uid: dict(tracked.published) for uid, tracked in self.updates.devices.items()}

    # -- input -----------------------------------------------------------------------------
    @rpc
    def button_params(self) -> list[dict[str, str]]:
        """The gamepad's parameters, in bitmap order: ``[{name, type}]`` (buttons, then axes)."""
        return self.inputs.button_params()
