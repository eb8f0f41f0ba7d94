"""The student process's runner in-process, with real buffers: the test plays control, device
and broker.

``Rig.run(script)`` runs the :class:`StudentRunner` in the main thread (it must: signals) and
``script(rig)`` in a second thread, which drives it like the MQTT thread would
(``rig.mode("teleop")``) and then shuts it down. The rig owns a KoalaBear (alias ``koala``,
short form ``13_42``), a YogiBear (alias ``koala_yogi``), four gamepads and the keyboard, all
real shared-memory buffers of a robot name no other test uses.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runtime.aliases import set_alias
from runtime.buffer import BufferStore
from runtime.messages import LogRecord, Match
from runtime.service.executor import StudentRunner
from runtime.service.executor.sync import start_thread

from tests.support.wait import wait_for

PROGRAMS = Path(__file__).with_name("programs")
KOALA = 13 << 72 | 1 << 64 | 42
YOGI = 10 << 72 | 1 << 64 | 7


class Rig:
    def __init__(self, tmp_path: Path, robot: str, timeouts: dict[str, float] | None = None,
                 program: str | None = None, inputs: bool = True) -> None:
        self.state = tmp_path
        self.code = tmp_path / "studentcode.py"
        self.store = BufferStore(robot)
        self.koala = self.store.create_device(str(KOALA), "KoalaBear")
        self.koala.connected = True
        self.yogi = self.store.create_device(str(YOGI), "YogiBear")
        self.yogi.connected = True
        for device in (self.koala, self.yogi):  # as the devices' first DeviceData would
            device.update(device.read())
        self.gamepads = [self.store.gamepad(i, create=True) for i in range(4)] if inputs else []
        self.keyboard = self.store.keyboard(create=True) if inputs else None
        set_alias(tmp_path, "koala", str(KOALA))
        set_alias(tmp_path, "koala_yogi", str(YOGI))
        self.dispatcher = StudentRunner(self.store, timeouts=timeouts, student_code=self.code,
                                     state_dir=tmp_path)
        self.logs: list[LogRecord] = []
        self.matches: list[Match] = []
        self.dispatcher.listeners.append(self._on_event)
        if program:
            self.program(program)

    def _on_event(self, kind: str, payload: Any) -> None:
        if kind == "log":
            self.logs.append(payload)
        elif kind == "match":
            self.matches.append(payload)

    # -- driving ------------------------------------------------------------------------------
    def program(self, name: str) -> None:
        shutil.copyfile(PROGRAMS / name, self.code)

    def mode(self, mode: str, **kwargs: Any) -> Match:
        return self.dispatcher.change_mode(mode, **kwargs)

    @property
    def module(self) -> Any:
        return self.dispatcher.module

    def wait_module(self, attribute: str, predicate: Callable[[Any], bool] = bool,
                    starts: int | None = None) -> Any:
        """Wait until the current student module's ``attribute`` satisfies ``predicate``."""
        def check() -> bool:
            module = self.dispatcher.module
            if module is None or (starts is not None and self.dispatcher.mode_starts < starts):
                return False
            return predicate(getattr(module, attribute, None))
        wait_for(check, message=lambda: f"{attribute} = "
                 f"{getattr(self.dispatcher.module, attribute, '(no module)')}; logs: "
                 f"{self.texts()}")
        return getattr(self.dispatcher.module, attribute)

    def texts(self, level: str | None = None) -> list[str]:
        return [r.message for r in list(self.logs) if level is None or r.level == level]

    def wait_log(self, fragment: str, level: str | None = None) -> str:
        """The first student log message containing ``fragment``."""
        def find() -> str | None:
            return next((t for t in self.texts(level) if fragment in t), None)
        return wait_for(find, message=lambda: f"no log with {fragment!r}: {self.texts()}")

    def stick(self, value: float, buttons: int = 0, index: int = 0) -> None:
        self.gamepads[index].update(buttons, (0.0, value, 0.0, 0.0), 1.0)

    # -- running ------------------------------------------------------------------------------
    def run(self, script: Callable[[Rig], None]) -> None:
        """Run the dispatcher here (main thread) and ``script`` in a thread, then stop."""
        failure: list[BaseException] = []

        def drive() -> None:
            try:
                script(self)
            except BaseException as exc:
                failure.append(exc)
            finally:
                self.dispatcher.shutdown()

        thread = start_thread(threading.Thread(target=drive, name="test script"))
        try:
            self.dispatcher.run()
        finally:
            thread.join(30)
        if failure:
            raise failure[0]

    def close(self) -> None:
        self.dispatcher.mailbox.close()
        self.store.close()
