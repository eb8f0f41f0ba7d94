"""pylint plugin: ``--load-plugins=runtime.lint.plugin``. Runs :mod:`runtime.lint.checks` on
each module pylint checks, so the robot's findings come with pylint's own in one list.

Option ``--robot-aliases=name=uid,...``: the robot's aliases (``runtime lint`` passes them);
without it device aliases are not checked (params still are, against every device type).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from astroid import nodes  # type: ignore[import-untyped]
from pylint.checkers import BaseChecker

from runtime.lint.checks import MESSAGES, check_module

if TYPE_CHECKING:
    from pylint.lint import PyLinter


class RobotChecker(BaseChecker):
    """The robot checks as pylint messages (their text is the finding's sentence)."""

    name = "robot"
    msgs = {msgid: ("%s", symbol, description)
            for symbol, (msgid, description) in MESSAGES.items()}
    options = (
        ("robot-aliases", {"default": None, "type": "string", "metavar": "<name=uid,...>",
                           "help": "The robot's device aliases; unset: aliases not checked."}),
    )

    def visit_module(self, node: nodes.Module) -> None:
        for finding in check_module(node, self._aliases()):
            self.add_message(finding.symbol, line=finding.line, col_offset=finding.column,
                             args=(finding.message,), node=finding.node)

    def _aliases(self) -> dict[str, str] | None:
        raw: Any = self.linter.config.robot_aliases
        if raw is None:
            return None
        pairs = (item.partition("=") for item in str(raw).split(",") if item.strip())
        return {name.strip(): uid.strip() for name, _, uid in pairs}


def register(linter: PyLinter) -> None:
    linter.register_checker(RobotChecker(linter))
