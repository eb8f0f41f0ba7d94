"""Checks that know the robot, on the astroid tree pylint builds of a student program.

They run inside pylint (``runtime.lint.plugin``, for ``runtime lint`` and the broker's ``lint``
RPC) and on their own (:func:`check_source`, for ``upload``'s warnings): one implementation,
the same findings. What the API offers comes from the typed stub ``student.pyi`` (the file
editors use too), the devices from the catalog and the robot's aliases; nothing here parses
Python by hand.

Each finding is something that will not do what the student meant, so the checks are careful
to stay silent when they cannot be sure: a device or param is checked only when it is a string
literal or a module-level constant assigned once, an alias only when the robot's aliases are
known, a ``Robot.run`` target only when astroid infers it.
"""

from __future__ import annotations

import ast
import difflib
import enum
import re
from collections.abc import Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import astroid  # type: ignore[import-untyped]
from astroid import nodes  # type: ignore[import-untyped]
from astroid.exceptions import AstroidError  # type: ignore[import-untyped]

from runtime.buffer.inputs import AXES, BUTTONS, KEYS
from runtime.catalog import Catalog, DeviceType, default_catalog
from runtime.exception import CatalogError
from runtime.protocol.uid import Uid, UidError

STUB = Path(__file__).with_name("student.pyi")
SETUP_MAIN = ("autonomous_setup", "autonomous_main", "teleop_setup", "teleop_main")
WHOLE = ("autonomous", "teleop")
MODE_NAMES = SETUP_MAIN + WHOLE
NEAR_MISS = 0.85  # difflib ratio above which a function name is a misspelled mode function
SHORT_FORM = re.compile(r"^(\d+)_(\d+)$")

#: symbol -> (pylint message id, one-line description); the message text is the finding's.
MESSAGES = {
    "robot-unknown-name": ("E9501", "An attribute the student API does not have"),
    "robot-mode-misspelled": ("W9502", "A near-miss name of a mode function (never called)"),
    "robot-async-mode-function": ("E9503", "A mode function defined with async def"),
    "robot-run-target": ("E9504", "Robot.run given something that is not a function"),
    "robot-unknown-device": ("W9505", "A device name that is no alias, uid or type_id_id"),
    "robot-unknown-param": ("E9506", "A param the device (or any device) does not have"),
    "robot-unknown-input": ("E9507", "A gamepad or keyboard name that does not exist"),
    "robot-missing-mode": ("W9508", "A mode with no code to run"),
    "robot-both-styles": ("W9509", "Both setup/main and the one-function style for a mode"),
    "robot-coroutine-dropped": ("W9510", "An async def called as a statement: it never runs"),
}
#: findings the executor's own upload check already reports in its words (loader.py)
SHAPE_SYMBOLS = frozenset({"robot-async-mode-function", "robot-missing-mode",
                           "robot-both-styles"})


@dataclass(frozen=True)
class Finding:
    symbol: str
    line: int
    column: int
    message: str
    node: nodes.NodeNG | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, object]:
        return {"symbol": self.symbol, "line": self.line, "column": self.column,
                "message": self.message, "type": "error" if MESSAGES[self.symbol][0][0] == "E"
                else "warning", "message-id": MESSAGES[self.symbol][0]}


@cache
def api_members() -> dict[str, frozenset[str]]:
    """Injected name -> its public attributes, read from ``student.pyi``."""
    tree = ast.parse(STUB.read_text(encoding="utf-8"))
    classes: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names = set()
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    names.add(item.name)
                elif isinstance(item, ast.Assign):
                    names.update(t.id for t in item.targets if isinstance(t, ast.Name))
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    names.add(item.target.id)
            if any(isinstance(base, ast.Name) and base.id == "StrEnum" for base in node.bases):
                names.update(name for name in dir(enum.StrEnum) if not name.startswith("_"))
            classes[node.name] = {name for name in names if not name.startswith("_")}
    members = {}
    for node in tree.body:
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(node.annotation, ast.Name)):
            members[node.target.id] = frozenset(classes[node.annotation.id])
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            members[node.name] = frozenset(classes[node.name])
    return members


def check_source(source: str, aliases: Mapping[str, str] | None = None,
                 filename: str = "studentcode.py") -> list[Finding]:
    """The findings on a program's text (an empty list if astroid cannot build it)."""
    try:
        module = astroid.parse(source, module_name="studentcode", path=filename)
    except (AstroidError, SyntaxError, ValueError):
        return []
    return check_module(module, aliases)


def check_module(module: nodes.Module, aliases: Mapping[str, str] | None = None,
                 catalog: Catalog | None = None) -> list[Finding]:
    """Every finding on ``module``, in line order. ``aliases``: alias -> uid (None or empty:
    unknown, or none set up yet, so device aliases are not checked)."""
    checker = _Checker(module, aliases or None, catalog or default_catalog())
    return sorted(checker.run(), key=lambda f: (f.line, f.column, f.symbol))


def _at(symbol: str, node: nodes.NodeNG, message: str) -> Finding:
    """A finding at ``node`` (a module's findings are on its line 1)."""
    return Finding(symbol, node.lineno or 1, node.col_offset or 0, message, node)


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f": did you mean {close[0]}?" if close else ""


class _Checker:
    def __init__(self, module: nodes.Module, aliases: Mapping[str, str] | None,
                 catalog: Catalog) -> None:
        self.module = module
        self.aliases = aliases
        self.catalog = catalog
        self.members = api_members()
        self._unknown_aliases: set[str] = set()  # each said once, at its first use

    def run(self) -> Iterator[Finding]:
        yield from self._mode_functions()
        for node in self.module.nodes_of_class(nodes.Attribute):
            yield from self._attribute(node)
        for call in self.module.nodes_of_class(nodes.Call):
            yield from self._call(call)
        for statement in self.module.nodes_of_class(nodes.Expr):
            yield from self._dropped(statement)

    def _dropped(self, statement: nodes.Expr) -> Iterator[Finding]:
        """``wave()`` on its own line, ``wave`` an ``async def``: nothing runs."""
        call = statement.value
        if not isinstance(call, nodes.Call):
            return
        called = _only(call.func)
        if isinstance(called, nodes.AsyncFunctionDef):
            label = call.func.as_string()
            yield _at("robot-coroutine-dropped", call,
                      f"{label}() does nothing: {label} is an async def, which runs only when "
                      f"started with Robot.run({label}) (or awaited inside another async def: "
                      f"await {label}())")

    # -- names of the API ------------------------------------------------------------------
    def _injected(self, node: nodes.NodeNG) -> str | None:
        """The injected name ``node`` stands for (a Name the program never assigns)."""
        if not isinstance(node, nodes.Name) or node.name not in self.members:
            return None
        try:
            _, assigned = node.lookup(node.name)
        except AstroidError:
            return None
        return None if assigned else node.name

    def _attribute(self, node: nodes.Attribute) -> Iterator[Finding]:
        name = self._injected(node.expr)
        if name is None or node.attrname in self.members[name]:
            return
        yield _at("robot-unknown-name", node,
                      f"{name} has no {node.attrname}"
                      + _did_you_mean(node.attrname, self.members[name]))

    def _api_call(self, call: nodes.Call) -> tuple[str, str] | None:
        func = call.func
        if isinstance(func, nodes.Attribute):
            name = self._injected(func.expr)
            if name is not None:
                return name, func.attrname
        return None

    # -- mode functions ----------------------------------------------------------------------
    def _mode_functions(self) -> Iterator[Finding]:
        defined = set(self.module.locals)
        functions = [node for node in self.module.body if isinstance(node, nodes.FunctionDef)]
        for function in functions:
            name = function.name
            if name in SETUP_MAIN and isinstance(function, nodes.AsyncFunctionDef):
                yield _at("robot-async-mode-function", function,
                              f"{name} is an async def: Runtime calls it as a plain function "
                              "(every period for *_main), so make it a plain def and start "
                              "async work from it with Robot.run(your_async_function)")
            if name in MODE_NAMES:
                continue
            close = difflib.get_close_matches(name, MODE_NAMES, n=1, cutoff=NEAR_MISS)
            if close and close[0] not in defined:
                yield _at("robot-mode-misspelled", function,
                              f"{name} looks like a misspelled {close[0]}: Runtime calls only "
                              "the exact names, so this never runs")
        for prefix in WHOLE:
            pair = f"{prefix}_setup" in defined or f"{prefix}_main" in defined
            if not pair and prefix not in defined:
                yield _at("robot-missing-mode", self.module,
                              f"no {prefix}_setup/{prefix}_main and no {prefix}(): nothing will "
                              f"run in {prefix}")
            elif pair and prefix in defined:
                yield _at("robot-both-styles", self.module,
                              f"both {prefix}() and {prefix}_setup/{prefix}_main are defined: "
                              f"only {prefix}_setup/{prefix}_main will run")

    # -- calls -------------------------------------------------------------------------------
    def _call(self, call: nodes.Call) -> Iterator[Finding]:
        api = self._api_call(call)
        if api is None:
            return
        name, method = api
        args = call.args
        if name == "Robot" and method == "run" and args:
            yield from self._run_target(call, args[0])
        elif name == "Robot" and method in ("get_value", "set_value", "set_motor",
                                              "stop_motor") and args:
            device_type = yield from self._device(call, args[0])
            if method in ("get_value", "set_value") and len(args) > 1:
                yield from self._param(call, args[1], device_type, method)
        elif name in ("Gamepad", "Keyboard") and method == "get_value" and args:
            value = self._literal(args[0])
            known = KEYS if name == "Keyboard" else BUTTONS + AXES
            if value is not None and value not in known:
                what = "key" if name == "Keyboard" else "button or joystick"
                yield _at("robot-unknown-input", args[0],
                              f"{name} has no {what} {value!r}" + _did_you_mean(value, known))

    def _run_target(self, call: nodes.Call, target: nodes.NodeNG) -> Iterator[Finding]:
        if isinstance(target, nodes.Call):
            called = _only(target.func)
            if isinstance(called, nodes.FunctionDef) and (
                    isinstance(called, nodes.AsyncFunctionDef) or not _returns_value(called)):
                label = target.func.as_string()
                yield _at("robot-run-target", target,
                              f"Robot.run needs the function itself: Robot.run({label}), not "
                              f"Robot.run({label}()) (that calls {label} now and gives "
                              "Robot.run its result)")
            return
        value = _only(target)
        if value is not None and not value.callable():
            yield _at("robot-run-target", target,
                          f"Robot.run needs a function (a def or an async def), not "
                          f"{target.as_string()} ({value.pytype().split('.')[-1]})")

    def _device(self, call: nodes.Call,
                arg: nodes.NodeNG) -> Generator[Finding, None, DeviceType | None]:
        """Check a literal device name; return its device type when it is known."""
        name = self._literal(arg)
        if name is None:
            return None
        type_id: int | None = None
        short = SHORT_FORM.match(name)
        if name.isdecimal():
            type_id = _type_field(name)
        elif short:
            type_id = int(short.group(1))
        elif self.aliases is not None:
            uid = self.aliases.get(name)
            if uid is None:
                if name in self._unknown_aliases:
                    return None
                self._unknown_aliases.add(name)
                known = sorted(self.aliases)
                yield _at("robot-unknown-device", arg,
                              f"no device alias {name!r} on this robot"
                              + _did_you_mean(name, known) + f" (aliases: "
                              f"{', '.join(known) or 'none'}; add one with `runtime alias set "
                              f"{name} UID`)")
                return None
            type_id = _type_field(uid)
        if type_id is None:
            return None
        try:
            return self.catalog.get(type_id)
        except CatalogError:
            yield _at("robot-unknown-device", arg,
                          f"device {name!r}: there is no device type {type_id}")
            return None

    def _param(self, call: nodes.Call, arg: nodes.NodeNG, device_type: DeviceType | None,
               method: str) -> Iterator[Finding]:
        param = self._literal(arg)
        if param is None:
            return
        if device_type is None:
            every = {p.name for kind in self.catalog for p in kind.params}
            if param not in every:
                yield _at("robot-unknown-param", arg,
                              f"no device type has a param {param!r}"
                              + _did_you_mean(param, sorted(every)))
            return
        names = [p.name for p in device_type.params]
        if param not in names:
            yield _at("robot-unknown-param", arg,
                          f"{device_type.name} has no param {param!r}"
                          + _did_you_mean(param, names))
            return
        spec = device_type.param(param)
        if method == "get_value" and not spec.readable:
            yield _at("robot-unknown-param", arg,
                          f"{device_type.name}.{param} cannot be read (it is write-only)")
        elif method == "set_value" and not spec.writeable:
            yield _at("robot-unknown-param", arg,
                          f"{device_type.name}.{param} cannot be written (it is read-only)")

    def _literal(self, node: nodes.NodeNG) -> str | None:
        """A string literal, or a module-level name assigned a string exactly once."""
        if isinstance(node, nodes.Const):
            return node.value if isinstance(node.value, str) else None
        if not isinstance(node, nodes.Name):
            return None
        try:
            scope, assigned = node.lookup(node.name)
        except AstroidError:
            return None
        if not isinstance(scope, nodes.Module) or len(self.module.locals.get(node.name, ())) != 1:
            return None
        if len(assigned) == 1 and isinstance(assigned[0].parent, nodes.Assign):
            value = assigned[0].parent.value
            if isinstance(value, nodes.Const) and isinstance(value.value, str):
                return value.value
        return None


def _only(node: nodes.NodeNG) -> nodes.NodeNG | None:
    """What ``node`` surely is: its one inferred value, None if unsure."""
    try:
        values = list(node.infer())
    except AstroidError:
        return None
    if len(values) != 1 or isinstance(values[0], astroid.util.UninferableBase):
        return None
    return values[0]


def _returns_value(function: nodes.FunctionDef) -> bool:
    """Does ``function`` ever ``return`` something (a factory may return a function)?"""
    return any(node.value is not None and node.scope() is function
               for node in function.nodes_of_class(nodes.Return))


def _type_field(uid: object) -> int | None:
    """The catalog key of a uid (its type field), or None when ``uid`` is not one."""
    try:
        return Uid.parse(uid).type_field
    except UidError:
        return None
