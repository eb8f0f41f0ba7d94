"""What students read: error reports (their frames, one sentence) and print's flood control."""

from __future__ import annotations

import io
import sys
import threading
from types import SimpleNamespace

import pytest
from runtime.exception import ExecutionTimeout, ParameterError
from runtime.service.executor.console import Console
from runtime.service.executor.errors import ErrorReporter, format_error

from tests.support.wait import wait_for

STUDENT = "/robot/state/studentcode.py"


def raised_in_student_code(source: str, call: str = "main()") -> BaseException:
    """The exception ``call`` raises, with frames from a file named like the student's."""
    namespace: dict = {}
    exec(compile(source, STUDENT, "exec"), namespace)
    try:
        exec(compile(call, "<runtime>", "eval"), namespace)
    except BaseException as exc:
        return exc
    raise AssertionError("no exception")


def test_only_student_frames_then_the_sentence():
    exc = raised_in_student_code("def helper():\n    return 1 / 0\ndef main():\n    helper()\n")
    error = format_error("teleop_main", exc, [STUDENT])
    lines = error.message.splitlines()
    assert lines[0] == "Traceback (your code, most recent call last):"
    assert 'File "studentcode.py", line 4, in main' in error.message
    assert 'File "studentcode.py", line 2, in helper' in error.message
    assert "<runtime>" not in error.message
    assert lines[-2] == "ZeroDivisionError: division by zero"
    assert lines[-1] == "teleop_main raised ZeroDivisionError: division by zero"
    assert error.context == {"function": "teleop_main", "error": "ZeroDivisionError", "line": 2}


def test_recursion_is_shortened():
    exc = raised_in_student_code("def main():\n    main()\n")
    error = format_error("teleop_main", exc, [STUDENT])
    assert len(error.message.splitlines()) < 12
    assert "repeated" in error.message
    assert error.sentence.startswith("teleop_main raised RecursionError: a function kept")


@pytest.mark.parametrize(("exc", "sentence"), [
    (SystemExit(0), "teleop_main called sys.exit() or exit(): Runtime does not stop"),
    (KeyboardInterrupt(), "teleop_main raised KeyboardInterrupt: Runtime ignores it"),
    (ParameterError("Robot.set_value('m', 'x', 2): out of bounds"),
     "teleop_main: Robot.set_value('m', 'x', 2): out of bounds"),
    (ExecutionTimeout("teleop_main took longer than 0.02 s: is there a loop that never ends?"),
     "teleop_main took longer than 0.02 s: is there a loop that never ends?"),
])
def test_sentences(exc, sentence):
    assert format_error("teleop_main", exc, [STUDENT]).sentence.startswith(sentence)


def test_syntax_error_shows_line_and_caret():
    try:
        compile("x = (1,\ndef f(:\n", STUDENT, "exec")
    except SyntaxError as exc:
        error = format_error("loading studentcode.py", exc, [STUDENT])
    assert "studentcode.py, line" in error.message and "has a syntax error" in error.message
    assert "^" in error.message


def test_repeated_errors_are_counted_not_repeated():
    records = []
    now = [0.0]
    reporter = ErrorReporter(lambda *record: records.append(record), lambda: [STUDENT],
                             window=5.0, clock=lambda: now[0])
    exc = raised_in_student_code("def main():\n    raise ValueError('x')\n")
    for _ in range(10):
        reporter.report("teleop_main", exc)
    assert len(records) == 1
    now[0] = 6.0
    reporter.report("teleop_main", exc)
    assert len(records) == 3  # the count, as a line of its own naming the error, then it again
    assert records[1][1] == "the ValueError in teleop_main, line 2 happened 9 more times"
    assert records[1][0] == "error" and records[1][2]["function"] == "teleop_main"
    assert records[1][2]["repeats"] == 9
    assert records[2][1] == records[0][1]


def test_repeat_counts_belong_to_one_error_and_one_run():
    records = []
    reporter = ErrorReporter(lambda *record: records.append(record), lambda: [STUDENT],
                             window=5.0, clock=lambda: 0.0)
    first = raised_in_student_code("def main():\n    raise ValueError('x')\n")
    other = raised_in_student_code("def main():\n    raise KeyError('k')\n")
    for _ in range(3):
        reporter.report("teleop_main", first)
    reporter.report("teleop_main", other)  # a different error: the count of the first goes first
    assert [r[1].splitlines()[-1] for r in records] == [
        "teleop_main raised ValueError: x",
        "the ValueError in teleop_main, line 2 happened 2 more times",
        "teleop_main raised KeyError: 'k'"]
    reporter.report("teleop_main", other)
    reporter.close()  # the run ends: its pending count is reported, not carried over
    assert records[-1][1] == "the KeyError in teleop_main, line 2 happened 1 more time"
    fresh = ErrorReporter(lambda *record: records.append(record), lambda: [STUDENT])
    before = len(records)
    fresh.report("teleop_main", other)  # a new run (a new reporter) starts counting afresh
    assert len(records) == before + 1 and "more time" not in records[-1][1]


@pytest.fixture
def console():
    records = []
    got = threading.Event()

    def log(level, message, context):
        records.append((level, message))
        got.set()

    console = Console(log, max_lines=20, coalesce=0.02)
    console.records = records
    yield console
    console.close()


def test_print_is_builtin_compatible(console):
    console.print("a", 1, None, 2.5)
    console.print("x", "y", sep=", ", end=".\n")
    console.print("part", end="")
    console.print(" two")
    console.print(sep=None, end=None)
    console.print("bad", file=sys.stderr)
    out = io.StringIO()
    console.print("to a file", 3, sep="|", file=out)
    console.flush()
    assert out.getvalue() == "to a file|3\n"
    text = "\n".join(message for level, message in console.records if level == "info")
    assert text == "a 1 None 2.5\nx, y.\npart two\n"
    assert ("warning", "bad") in console.records
    with pytest.raises(TypeError, match="sep must be None or a string"):
        console.print("x", sep=3)
    with pytest.raises(TypeError, match="end must be None or a string"):
        console.print("x", end=b"")


def test_lines_are_coalesced_and_floods_capped():
    records = []
    console = Console(lambda level, message, context: records.append((level, message)),
                      max_lines=20, coalesce=3600.0)  # nothing leaves before the flush
    for i in range(200):
        console.print(i)
    console.flush()
    console.close()
    shown = [line for level, message in records if level == "info"
             for line in message.splitlines()]
    assert shown == [str(i) for i in range(20)]
    assert len([r for r in records if r[0] == "info"]) == 1  # one record for the 20 lines
    console = SimpleNamespace(records=records)
    notice = next(message for _, message in console.records if "dropped" in message)
    assert notice.startswith("... 180 printed lines dropped")
    assert "at most 20 lines a second" in notice


def test_partial_line_is_sent_with_flush(console):
    console.print("waiting", end="", flush=True)
    wait_for(lambda: console.records)
    assert console.records == [("info", "waiting")]
