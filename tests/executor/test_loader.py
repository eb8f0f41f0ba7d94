"""Checking, storing and loading the student program."""

from __future__ import annotations

import hashlib
import sys

import pytest
from runtime.exception import ExecutionError
from runtime.service.executor import SyncExecutor
from runtime.service.executor.loader import check_source, load_module, store_source

pytestmark = pytest.mark.timeout(60, method="thread")

GOOD = "def teleop_main():\n    pass\n\ndef autonomous():\n    pass\n"


def test_a_good_program_has_no_warnings():
    assert check_source(GOOD) == []


def test_syntax_error_is_refused_with_its_line():
    with pytest.raises(ExecutionError) as info:
        check_source("def teleop_main(:\n    pass\n")
    assert "studentcode.py has a syntax error at line 1" in info.value.message
    assert info.value.context["line"] == 1


def test_not_text_is_refused():
    with pytest.raises(ExecutionError, match="must be text"):
        check_source(b"print(1)")


def test_shape_warnings():
    warnings = check_source("async def teleop_main():\n    pass\n")
    assert any("teleop_main (line 1) is an async def" in w for w in warnings)
    assert any("nothing will run in autonomous" in w for w in warnings)
    warnings = check_source(GOOD + "def teleop():\n    pass\n")
    assert any("only teleop_setup/teleop_main will run" in w for w in warnings)


def test_store_is_atomic_and_returns_the_hash(tmp_path):
    path = tmp_path / "studentcode.py"
    result = store_source(path, GOOD)
    assert result == {"sha256": hashlib.sha256(GOOD.encode()).hexdigest(), "warnings": []}
    assert path.read_text() == GOOD
    with pytest.raises(ExecutionError):
        store_source(path, "def broken(:\n")
    assert path.read_text() == GOOD  # a refused program leaves the old one in place
    assert [p.name for p in tmp_path.iterdir()] == ["studentcode.py"]


def test_load_puts_the_names_in_and_registers_the_module(tmp_path):
    path = tmp_path / "studentcode.py"
    path.write_text("from dataclasses import dataclass\n@dataclass\nclass Point:\n    x: int\n"
                    "VALUE = GIVEN * 2\n")
    executor = SyncExecutor()
    with executor.installed():
        module, outcome = load_module(path, "studentcode_test", {"GIVEN": 21}, executor, 1.0)
    assert outcome.ok and module.VALUE == 42
    assert sys.modules["studentcode_test"] is module  # dataclasses need it
    del sys.modules["studentcode_test"]


def test_load_reports_a_missing_program(tmp_path):
    reports = []
    executor = SyncExecutor(report=reports.append)
    with executor.installed():
        module, outcome = load_module(tmp_path / "none.py", "x", {}, executor, 1.0)
    assert module is None and outcome.status == "error"
    assert "upload one with `runtime upload FILE`" in str(outcome.error)
    assert reports == [outcome]
