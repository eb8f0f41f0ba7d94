"""The names Runtime gives every student program, with their types (docs/student-api.md).

Runtime's lint reads this file to know the robot's API (a misspelled name gets "did you
mean ...?"), and editors can use it for completion: save it as ``__builtins__.pyi`` next to
your ``studentcode.py`` (Pyright, Pylance and VS Code read that file as extra builtins).
"""

from collections.abc import Callable, Coroutine
from enum import StrEnum
from typing import Any

_Action = Callable[..., Any] | Callable[..., Coroutine[Any, Any, Any]]

class Mode(StrEnum):
    IDLE = "idle"
    AUTO = "auto"
    TELEOP = "teleop"
    ESTOP = "estop"

class Alliance(StrEnum):
    BLUE = "blue"
    GOLD = "gold"

class _Robot:
    def get_value(self, device: str, param: str) -> bool | int | float: ...
    def set_value(self, device: str, param: str, value: bool | int | float) -> None: ...
    def run(self, action: _Action, *args: Any, timeout: float | None = None) -> None: ...
    def is_running(self, action: _Action) -> bool: ...
    def sleep(self, seconds: float) -> None: ...
    def log(self, key: Any, value: Any) -> None: ...
    # earlier generations' names (they work, and say which name to use now)
    @property
    def start_pos(self) -> str | None: ...
    def set_motor(self, device: str, value: float) -> None: ...
    def stop_motor(self, device: str) -> None: ...
    def emergency_stop(self) -> None: ...

class _Gamepad:
    def get_value(self, name: str, index: int = 0) -> bool | float: ...

class _Keyboard:
    def get_value(self, key: str) -> bool: ...

class _Actions:
    @staticmethod
    async def sleep(seconds: float) -> None: ...

class _Match:
    @property
    def mode(self) -> Mode: ...
    @property
    def alliance(self) -> Alliance | None: ...
    @property
    def start_pos(self) -> str | None: ...
    @property
    def elapsed(self) -> float: ...
    @property
    def game_state(self) -> str | None: ...

class _Field:
    @property
    def starting_zone(self) -> str | None: ...

Robot: _Robot
Gamepad: _Gamepad
Keyboard: _Keyboard
Actions: _Actions
Match: _Match
Field: _Field

def print(*values: object, sep: str | None = " ", end: str | None = "\n", file: Any = None,
          flush: bool = False) -> None: ...
