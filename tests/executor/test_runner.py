"""The StudentRunner (what runs inside the student process) in-process: modes, student
programs, errors and safety, with real buffers.

The runner runs in the main thread (signals), the test script in a second thread.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import runtime
from runtime.exception import ExecutionError
from runtime.service.executor.loader import store_source

from tests.executor.rig import KOALA
from tests.support.wait import wait_for

# pytest-timeout's default method uses SIGALRM, which the executor needs for itself.
pytestmark = pytest.mark.timeout(120, method="thread")

# short enough to wait for a loop to be cut, long enough for the normal import and setup
# of the other cases on a loaded 2-core machine (0.3 s was not)
SHORT = {"import": 1.0, "*_setup": 1.0}


def test_setup_runs_once_then_main_every_period(make_rig):
    rig = make_rig(program="counting.py")

    def script(rig):
        match = rig.mode("teleop")
        assert match.mode == "teleop"
        rig.wait_module("main_calls", lambda n: n >= 10)
        assert rig.module.setup_calls == 1
        rig.wait_log("teleop setup")
        rig.mode("idle")
        calls = rig.module.main_calls
        wait_for(lambda: rig.dispatcher.mailbox.pending() is False)
        rig.mode("auto")
        rig.wait_module("main_calls", lambda n: n >= 3, starts=2)
        assert rig.module.setup_calls == 1  # a fresh module for every mode start
        assert calls >= 10

    rig.run(script)
    assert [m.mode for m in rig.matches] == ["teleop", "idle", "auto"]


def test_main_keeps_a_fixed_grid_of_ticks(make_rig):
    # a 0.3 s period (0.15 s calls): a call may start up to 75 ms late (a loaded 2-core
    # machine wakes threads tens of ms late; 25 ms with a 0.1 s period was not enough), and
    # the test still tells a grid from a loop that drifts half a period every call. The exact
    # grid arithmetic is test_sync.py's (a fake clock).
    rig = make_rig(program="half_period.py",
                   timeouts={"import": 2.0, "*_setup": 2.0, "*_main": 0.3})

    def script(rig):
        rig.mode("auto")
        rig.wait_module("main_calls", lambda n: n >= 16)

    rig.run(script)
    times = rig.module.main_times
    period = rig.dispatcher.period
    # Each call takes half a period. On a grid every call starts at start + n * period (n a
    # whole number; a tick missed under load is skipped, not shifted). A loop that waits a
    # period after each call starts them 1.5 periods apart: every other one half-way between,
    # so at most about half of its calls would count as on the grid here.
    ticks = [(t - times[0]) / period for t in times]
    on_grid = [tick for tick in ticks if abs(tick - round(tick)) < 0.25]
    assert len(on_grid) >= 0.75 * len(ticks), ticks


def test_error_in_import_is_reported_and_the_next_start_works(make_rig):
    rig = make_rig(program="import_error.py")

    def script(rig):
        rig.mode("teleop")
        message = rig.wait_log("IndexError", level="error")
        assert 'File "studentcode.py", line 4, in <module>' in message
        assert "LIMIT = VALUES[7]" in message
        assert "loading studentcode.py raised IndexError: list index out of range" in message
        assert "dispatcher.py" not in message and "runtime" not in message
        rig.wait_log("teleop cannot start", level="warning")
        rig.mode("idle")
        rig.program("counting.py")
        rig.mode("teleop")
        rig.wait_module("main_calls", lambda n: n >= 2, starts=2)

    rig.run(script)


#: Student mistakes that each get one clear message in the student log: (the program, by its
#: file name in programs/ or as source; words the message starts from; its level; patterns it
#: must also contain: what the student reads to fix it).
MISTAKES = [
    pytest.param("def teleop_main():\n    x = (1,\n\ndef other(:\n    pass\n",
                 "syntax error", "error", [r"studentcode\.py, line"],
                 id="syntax error names the line"),
    pytest.param("recursion.py", "RecursionError", "error",
                 ["kept calling itself", r"more \.\.\.|repeated"],
                 id="recursion error gets a short traceback"),
    pytest.param("async_main.py", "teleop_main is an async def", "error",
                 ["make it a plain def"], id="async main"),
    pytest.param("never_awaited.py", "never awaited", "warning", ["wave", r"Robot\.run"],
                 id="never awaited coroutine"),
]


@pytest.mark.parametrize(("program", "fragment", "level", "says"), MISTAKES)
def test_a_mistake_gets_one_short_clear_message(make_rig, program, fragment, level, says):
    rig = make_rig()
    if program.endswith(".py"):
        rig.program(program)
    else:
        rig.code.write_text(program)

    def script(rig):
        rig.mode("teleop")
        message = rig.wait_log(fragment, level=level)
        for pattern in says:
            assert re.search(pattern, message), f"{pattern!r} not in {message!r}"
        assert len(message.splitlines()) < 20  # the student's frames only, repeats folded

    rig.run(script)


def test_error_in_setup_stops_the_mode_and_the_motors(make_rig):
    rig = make_rig(program="setup_error.py")

    def script(rig):
        rig.mode("teleop")
        message = rig.wait_log("teleop_setup raised ValueError", level="error")
        assert "the arm is not calibrated" in message
        assert 'line 8, in teleop_setup' in message
        rig.wait_log("teleop_main will not run because teleop_setup failed")
        assert rig.koala.desired("duty_cycle_a") == 0.0
        assert rig.module.main_calls == 0

    rig.run(script)


def test_error_in_main_is_reported_once_motors_stopped_main_goes_on(make_rig):
    rig = make_rig(program="main_error.py")

    def script(rig):
        rig.mode("teleop")
        rig.wait_module("main_calls", lambda n: n >= 5)
        errors = rig.texts("error")
        assert len(errors) == 1  # the same error each period is counted, not repeated
        assert "teleop_main raised KeyError: 'missing'" in errors[0]
        assert "in helper" in errors[0] and "in teleop_main" in errors[0]
        assert rig.koala.desired("duty_cycle_a") == 0.0

    rig.run(script)


@pytest.mark.parametrize("where", ["import", "setup", "main", "swallow"])
def test_endless_loops_are_interrupted_and_reported(make_rig, monkeypatch, where):
    monkeypatch.setenv("TEST_LOOP_IN", where)
    rig = make_rig(program="loops.py", timeouts=SHORT)

    def script(rig):
        rig.mode("teleop")
        name = {"import": "loading studentcode.py", "setup": "teleop_setup"}.get(
            where, "teleop_main")
        message = rig.wait_log(f"{name} took longer than", level="error")
        assert "is there a loop that never ends?" in message
        assert 'File "studentcode.py", line' in message  # where it was stuck
        if where in ("main", "swallow"):
            rig.wait_module("main_calls", lambda n: n >= 3)  # the next ticks still happen

    rig.run(script)


def test_sys_exit_and_keyboard_interrupt_do_not_stop_the_executor(make_rig):
    rig = make_rig(program="exits.py")
    rig.code.write_text(rig.code.read_text().replace("sys.exit(3)", "pass"))

    def script(rig):
        rig.mode("teleop")
        rig.wait_log("KeyboardInterrupt", level="error")
        rig.wait_module("main_calls", lambda n: n >= 3)
        rig.mode("idle")
        rig.program("exits.py")
        rig.mode("teleop")
        rig.wait_log("called sys.exit()", level="error")

    rig.run(script)


def test_actions_run_one_instance_each_and_stop_at_mode_change(make_rig):
    rig = make_rig(program="actions.py")

    def script(rig):
        rig.mode("teleop")
        rig.wait_module("async_ticks", lambda n: n >= 3)
        rig.wait_module("plain_ticks", lambda n: n >= 3)
        module = rig.module
        assert module.results == ["done"]
        assert module.running_seen == (True, True)
        assert module.refused is None  # as in every earlier PiE runtime: no error
        said = rig.wait_log("Robot.run(spin): spin is still running", level="warning")
        assert "Robot.is_running(spin)" in said
        assert sum("spin is still running" in text for text in rig.texts()) == 1
        rig.mode("idle")
        assert module.plain_stopped.wait(10)
        wait_for(lambda: rig.dispatcher.actions.running() == [])
        ticks = (module.async_ticks, module.plain_ticks)
        rig.mode("teleop")  # the actions of the new module start again; the old ones stay off
        rig.wait_module("async_ticks", lambda n: n >= 1, starts=2)
        assert (module.async_ticks, module.plain_ticks) == ticks

    rig.run(script)


def test_failing_actions_are_reported_and_stop_the_motors(make_rig):
    rig = make_rig(program="action_error.py")

    def script(rig):
        rig.koala.update({"duty_cycle_a": 0.0})
        rig.mode("teleop")
        rig.wait_log("async action broke", level="error")
        message = rig.wait_log("broken_plain", level="error")
        assert "Robot.set_value('koala', 'duty_cycle_b', 2.0)" in message
        assert "from -1 to 1" in message
        assert rig.koala.desired("duty_cycle_a") == 0.0

    rig.run(script)


def test_gamepad_drives_in_teleop_only_and_input_wakes_main_early(make_rig):
    # ticks every 10 s: a call within the test is the first or an early one (with a 0.5 s
    # period a loaded machine could reach the tick before the wake, and no call was early)
    rig = make_rig(program="drive.py", timeouts={"*_main": 10.0})

    def script(rig):
        rig.stick(0.0)
        rig.mode("teleop")
        rig.wait_module("main_calls", lambda n: n >= 1)
        rig.stick(0.5)
        wait_for(lambda: rig.koala.desired("duty_cycle_a") == 0.5)
        assert rig.dispatcher.sync.early_calls >= 1  # long before the next tick
        rig.stick(0.5, buttons=1)
        wait_for(lambda: rig.koala.desired("duty_cycle_b") == 1.0)
        rig.mode("auto")
        message = rig.wait_module("auto_error", starts=2)
        assert "only be read in teleop" in message and "auto" in message

    rig.run(script)


def test_a_burst_of_input_changes_makes_one_early_call(make_rig):
    # ticks every 10 s: any call within the test is an early one (or the first)
    rig = make_rig(program="held_main.py", timeouts={"*_main": 10.0})

    def script(rig):
        rig.stick(0.0)
        rig.mode("teleop")
        rig.wait_module("main_calls", lambda n: n == 1)
        for step in range(1, 21):  # 20 changes while main is busy
            rig.stick(step / 100)
        rig.module.release.set()
        rig.wait_module("main_calls", lambda n: n == 2)  # one early call for the whole burst
        rig.stick(0.9)  # one more change, after it
        rig.wait_module("main_calls", lambda n: n == 3)
        assert rig.dispatcher.sync.early_calls == 2  # the burst's, then the single change's
        assert rig.module.main_calls == 3

    rig.run(script)


def test_estop_stops_main_stuck_in_a_loop(make_rig):
    rig = make_rig(program="stuck.py", timeouts={"*_main": 60.0})

    def script(rig):
        rig.stick(0.0)
        rig.mode("teleop")
        wait_for(lambda: rig.koala.desired("duty_cycle_a") == 0.75)
        rig.mode("estop")
        assert rig.koala.desired("duty_cycle_a") == 0.0  # at once, from this thread
        wait_for(lambda: not rig.dispatcher.mailbox.pending())  # the main thread took it
        assert rig.texts("error") == []  # a stop is not the student's error
        rig.mode("teleop")  # and it starts again (the same stuck code: then estop again)
        wait_for(lambda: rig.koala.desired("duty_cycle_a") == 0.75)
        rig.mode("estop")
        assert rig.koala.desired("duty_cycle_a") == 0.0

    rig.run(script)


def test_whole_mode_functions_run_once_and_stop_at_mode_end(make_rig):
    rig = make_rig(program="whole.py")

    def script(rig):
        rig.stick(0.0)
        rig.mode("teleop")
        rig.wait_module("teleop_loops", lambda n: n >= 3)
        assert rig.koala.desired("duty_cycle_a") == 0.25
        rig.mode("auto")
        wait_for(lambda: rig.koala.desired("duty_cycle_a") == 0.0)
        rig.wait_module("auto_done", starts=2)
        assert rig.koala.desired("duty_cycle_b") == -0.5
        wait_for(lambda: rig.dispatcher.actions.running() == [])

    rig.run(script)


def test_print_forms_reach_the_student_log(make_rig):
    rig = make_rig(program="prints.py")

    def script(rig):
        rig.mode("teleop")
        rig.wait_log("sep none end none")

    rig.run(script)
    text = "\n".join(rig.texts())
    assert "plain 1 2.5 None" in text
    assert "a-b!" in text
    assert "no newline then the rest" in text
    assert "flushed" in text
    assert [r.message for r in rig.logs if r.level == "warning"] == ["to stderr"]


def test_value_errors_name_device_param_and_what_is_allowed(make_rig):
    rig = make_rig(program="values.py")

    def script(rig):
        rig.mode("teleop")
        rig.wait_module("errors", lambda errors: len(errors) == 9)

    rig.run(script)
    errors = rig.module.errors
    assert "no device 'nope'" in errors["unknown device"]
    assert "13_42 (koala)" in errors["unknown device"]  # what is connected
    assert "has no param 'speed'" in errors["unknown param"]
    assert "duty_cycle_a" in errors["unknown param"]
    assert "pid_pos_kp cannot be read" in errors["read write-only"]
    assert "enc_vel cannot be written" in errors["write read-only"]
    assert "1.5 is out of bounds" in errors["out of bounds"]
    assert "from -1 to 1" in errors["out of bounds"]
    assert "takes a number" in errors["wrong type"] and "str" in errors["wrong type"]
    assert "named by a string" in errors["not a string"]
    assert "no button or axis 'trigger'" in errors["gamepad name"]
    assert "no key 'F13'" in errors["keyboard key"]


def test_devices_by_uid_short_form_and_alias(make_rig):
    rig = make_rig()
    rig.code.write_text(
        "def teleop_setup():\n"
        f"    Robot.set_value('{KOALA}', 'duty_cycle_a', 0.1)\n"
        "    Robot.set_value('13_42', 'duty_cycle_b', 0.2)\n"
        "    Robot.set_value('koala', 'motor_enabled_a', True)\n"
        "    global seen\n"
        "    seen = Robot.get_value('koala', 'enc_a')\n"
    )

    def script(rig):
        rig.koala.update({"enc_a": 12.5})
        rig.stick(0.0)
        rig.mode("teleop")
        rig.wait_module("seen", lambda value: value == 12.5)
        assert rig.koala.desired("duty_cycle_a") == pytest.approx(0.1)
        assert rig.koala.desired("duty_cycle_b") == pytest.approx(0.2)
        assert rig.koala.desired("motor_enabled_a") is True

    rig.run(script)


def test_upload_then_restart_runs_the_new_code(make_rig):
    rig = make_rig(program="version.py")

    def script(rig):
        rig.mode("teleop")
        rig.wait_log("version 1")
        source = rig.code.read_text().replace("VERSION = 1", "VERSION = 2")
        result = store_source(rig.code, source)
        assert len(result["sha256"]) == 64
        assert any("autonomous" in warning for warning in result["warnings"])
        rig.mode("idle")
        rig.mode("teleop")
        rig.wait_log("version 2")

    rig.run(script)


def test_bad_mode_is_refused_clearly(make_rig):
    rig = make_rig()

    def script(rig):
        with pytest.raises(ExecutionError, match="mode must be idle, auto, teleop or estop"):
            rig.mode("dance")
        assert rig.mode("autonomous").mode == "auto"

    rig.run(script)


def test_stops_never_land_inside_runtime_code(make_rig):
    """A loop of Robot calls, interrupted every period, never leaves a buffer half-written;
    a Robot.sleep in main is interrupted too."""
    rig = make_rig(program="busy_writes.py")

    def script(rig):
        rig.stick(0.0)
        rig.mode("teleop")
        rig.wait_module("main_calls", lambda n: n >= 20)
        rig.mode("idle")
        assert rig.koala.desired("duty_cycle_a") == 0.0  # readable: no write left open
        assert rig.koala.read()["enc_a"] == 0.0
        assert rig.dispatcher.sync.overruns >= 19

    rig.run(script)


def test_the_sample_program_drives_and_dances(make_rig):
    rig = make_rig()
    rig.code.write_bytes((Path(runtime.__file__).parent / "sample" / "studentcode.py")
                         .read_bytes())

    def script(rig):
        rig.stick(0.5)
        rig.mode("teleop")
        rig.wait_log("teleop: left stick drives")
        wait_for(lambda: rig.koala.desired("duty_cycle_a") == 0.25)  # half speed without A
        rig.mode("auto")
        rig.wait_log("autonomous: forward")
        wait_for(lambda: rig.koala.desired("duty_cycle_a") == 0.5)
        rig.mode("idle")
        assert rig.koala.desired("duty_cycle_a") == 0.0
        wait_for(lambda: rig.dispatcher.actions.running() == [])
        assert "autonomous: done" not in rig.texts()  # the dance stopped with the mode

    rig.run(script)
