"""Lint that knows the robot: checks of student programs against the student API, the device
catalog and the robot's aliases (:mod:`.checks`), a pylint plugin running them
(:mod:`.plugin`), and the typed stub of the injected names (``student.pyi``).

The checks (and astroid) load on first use, so a service that imports this package for
:func:`known_aliases` does not pay for them at start-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["MESSAGES", "SHAPE_SYMBOLS", "Finding", "check_module", "check_source",
           "known_aliases"]


def known_aliases(state_dir: Path | None) -> dict[str, str] | None:
    """The robot's aliases for the checks; None (not checked) when they cannot be read: a
    broken aliases file must not stop a lint or an upload."""
    if state_dir is None:
        return None
    from runtime.aliases import load_aliases

    try:
        return load_aliases(Path(state_dir))
    except Exception:
        return None


def __getattr__(name: str) -> Any:
    if name in ("MESSAGES", "SHAPE_SYMBOLS", "Finding", "check_module", "check_source"):
        from runtime.lint import checks

        return getattr(checks, name)
    raise AttributeError(f"module 'runtime.lint' has no attribute {name!r}")
