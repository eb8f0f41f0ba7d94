"""What the executor is asked to run (:class:`ExecutionRequest`) and how it went (:class:`Outcome`).

A request is one call of a student function with a time limit, or a periodic call whose time
limit is its period (``*_main``: called every ``timeout`` seconds, each call given at most that).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from runtime.exception import ExecutionError

Status = Literal["ok", "error", "timeout", "stopped"]


@dataclass(frozen=True, slots=True)
class ExecutionRequest:
    """Run ``func(*args)`` once within ``timeout`` s, or every ``timeout`` s when ``periodic``."""

    func: Callable[..., Any]
    args: tuple[Any, ...] = ()
    timeout: float = 1.0
    periodic: bool = False
    name: str = ""

    def __post_init__(self) -> None:
        if not callable(self.func):
            raise ExecutionError(
                f"cannot run {self.func!r}: it is not a function", func=repr(self.func)
            )
        if not isinstance(self.timeout, int | float) or not math.isfinite(self.timeout) or (
            self.timeout <= 0
        ):
            raise ExecutionError(
                f"timeout of {self.label} must be a positive number of seconds, "
                f"not {self.timeout!r}", timeout=self.timeout,
            )
        if not self.name:
            object.__setattr__(self, "name", function_name(self.func))

    @property
    def label(self) -> str:
        return self.name or function_name(self.func)

    @property
    def period(self) -> float | None:
        """Seconds between two calls of a periodic request (its timeout), else None."""
        return self.timeout if self.periodic else None


@dataclass(slots=True)
class Outcome:
    """How one call ended: ``ok`` (``value``), ``error`` / ``timeout`` (``error``), ``stopped``
    (interrupted by a mode change or shutdown; not an error of the student's)."""

    name: str
    status: Status
    value: Any = None
    error: BaseException | None = None
    started: float = 0.0
    elapsed: float = 0.0
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def failed(self) -> bool:
        return self.status in ("error", "timeout")


def function_name(func: Any) -> str:
    """The name a student knows a function by (``teleop_main``, ``square_dance``)."""
    return str(getattr(func, "__name__", None) or getattr(func, "__qualname__", None)
               or type(func).__name__)
