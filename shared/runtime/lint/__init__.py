"""Lint that knows the robot: checks of student programs against the student API, the device
catalog and the robot's aliases (:mod:`.checks`), a pylint plugin running them
(:mod:`.plugin`), and the typed stub of the injected names (``student.pyi``)."""

from runtime.lint.checks import MESSAGES, SHAPE_SYMBOLS, Finding, check_module, check_source

__all__ = ["MESSAGES", "SHAPE_SYMBOLS", "Finding", "check_module", "check_source"]
