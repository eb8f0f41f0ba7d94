"""An endless loop where LOOP_IN says (import, setup, main: the first call only)."""

import os

LOOP_IN = os.environ.get("TEST_LOOP_IN", "main")
main_calls = 0
if LOOP_IN == "import":
    while True:
        pass


def teleop_setup():
    if LOOP_IN == "setup":
        while True:
            pass


def teleop_main():
    global main_calls
    main_calls += 1
    if LOOP_IN == "main" and main_calls == 1:
        while True:
            pass
    if LOOP_IN == "swallow" and main_calls == 1:
        while True:
            try:
                while True:
                    pass
            except BaseException:
                pass
