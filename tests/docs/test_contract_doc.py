"""docs/contract.md is true to the code, both ways.

Topics: each topic pattern of the table parses (``Topics.parse``) and is exactly what the
``Topics`` builder of its kind builds; every topic kind the code knows is in the table; each
payload's keys are its model's fields. RPC: the table's methods, with their arguments, are the
``@rpc`` methods of each service's ``Handler``, no more, no less. CLI: the top-level commands.
Options: names and defaults. And no file of the repository points outside it.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import subprocess
import types
from typing import Any, get_args

import pytest
import runtime.service
from click import Group
from pydantic import BaseModel
from runtime import messages
from runtime.cli import main
from runtime.options import Options
from runtime.remote import Handler
from runtime.remote.rpc import signature_text
from runtime.topics import TopicKind, Topics

from tests.docs.markdown import REPO, brace_keys, code, section, table_rows

PAGE = "contract.md"
SAMPLES = {"service": "broker", "uid": "42", "index": "0", "source": "student",
           "method": "ping", "client_id": "c1"}
#: the payload model of each topic kind (a new kind needs its model here and a row in the doc)
MODELS: dict[str, type[BaseModel]] = {
    "status": messages.ServiceStatus, "device_info": messages.DeviceInfo,
    "device_data": messages.DeviceData, "gamepad": messages.GamepadInput,
    "keyboard": messages.KeyboardInput, "match": messages.Match, "log": messages.LogRecord,
    "rpc": messages.RPCRequest, "reply": messages.RPCReply,
    "game_state": messages.GameState, "field_presence": messages.FieldPresence,
}


def _topic_rows() -> list[list[str]]:
    return table_rows(section(PAGE, "MQTT topics"))


def _placeholders(pattern: str) -> list[str]:
    return re.findall(r"<(\w+)>", pattern)


@pytest.mark.parametrize("row", _topic_rows(), ids=lambda row: code(row[0]))
def test_each_documented_topic_is_built_by_its_topics_builder(row):
    pattern = code(row[0])
    topics = Topics("r1")
    concrete = topics.prefix + re.sub(r"<(\w+)>", lambda m: SAMPLES[m[1]], pattern)
    kind = topics.parse(concrete).kind
    builder = getattr(topics, kind)  # builders are named after their kind
    built = builder(*(SAMPLES[name] for name in _placeholders(pattern))) \
        if callable(builder) else builder
    assert built == concrete
    assert brace_keys(row[3]) == list(MODELS[kind].model_fields), \
        f"payload of {pattern} in docs/{PAGE} differs from {MODELS[kind].__name__}"


def test_every_topic_kind_of_the_code_is_documented():
    topics = Topics("r1")
    documented = {topics.parse(topics.prefix + re.sub(r"<(\w+)>", lambda m: SAMPLES[m[1]],
                                                      code(row[0]))).kind
                  for row in _topic_rows()}
    assert documented == set(get_args(TopicKind))
    assert set(MODELS) == set(get_args(TopicKind))


def _service_handlers() -> dict[str, type[Handler]]:
    """Every ``Handler`` subclass defined in ``runtime.service``, by its service name."""
    for module in pkgutil.walk_packages(runtime.service.__path__, "runtime.service."):
        importlib.import_module(module.name)
    found: dict[str, type[Handler]] = {}
    pending: list[type[Handler]] = [Handler]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.__module__.startswith("runtime.service.") and cls.service_name:
            found[cls.service_name] = cls
    return found


def _rpc_signatures_in_code() -> set[tuple[str, str]]:
    signatures = set()
    for service, cls in _service_handlers().items():
        for name, attr in inspect.getmembers(cls):
            if not name.startswith("_") and callable(attr) and hasattr(attr, "__rpc__"):
                bound = types.MethodType(attr, object())  # the signature without self
                signatures.add((service, signature_text(name, bound)))
    return signatures


def test_rpc_methods_in_the_doc_are_the_rpc_methods_of_the_services():
    documented = {(row[0], code(row[1])) for row in table_rows(section(PAGE, "RPC"))}
    in_code = _rpc_signatures_in_code()
    assert {"broker", "device", "executor"} <= {service for service, _ in in_code}
    assert documented - in_code == set(), "documented but not in the code (or other arguments)"
    assert in_code - documented == set(), f"@rpc methods missing from docs/{PAGE}"


def test_top_level_commands_in_the_doc_are_the_cli_commands():
    assert isinstance(main, Group)
    documented = {code(row[0]) for row in table_rows(section(PAGE, "Command line"))}
    assert documented == set(main.commands)


def _default(cell: str) -> Any:
    """A default as written: a `code` span is a string, else the leading number."""
    if cell.startswith("`"):
        return code(cell)
    number = re.match(r"[\d.]+", cell)
    assert number, f"no default in {cell!r}"
    return float(number.group())


def test_option_defaults_in_the_doc_are_the_option_defaults():
    rows = table_rows(section(PAGE, "Timing defaults and other options"))
    documented = {code(row[0]): _default(row[1]) for row in rows}
    assert documented == {name: field.default for name, field in Options.model_fields.items()}


_OUTSIDE = re.compile(r"\.\./shared|shared/reference|reference/[\w-]+\.md|\bdesign\.md")
#: files other engineers own that still name the old contract (to be fixed by their owners)
_NOT_MINE = {"tests/broker/test_options.py", "tests/device/test_executor_liveness.py"}


def test_no_file_points_outside_the_repository():
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                           check=True).stdout.split()
    pointing = []
    for name in files:
        if name in _NOT_MINE or name == "tests/docs/test_contract_doc.py":
            continue
        try:
            text = (REPO / name).read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue
        pointing += [f"{name}:{number}: {line.strip()}"
                     for number, line in enumerate(text.splitlines(), 1)
                     if _OUTSIDE.search(line)]
    assert pointing == []
