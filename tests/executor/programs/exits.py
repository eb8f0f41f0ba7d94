"""sys.exit() and KeyboardInterrupt from student code: the executor must survive both."""

import sys

main_calls = 0


def teleop_setup():
    sys.exit(3)


def teleop_main():
    global main_calls
    main_calls += 1
    if main_calls == 1:
        raise KeyboardInterrupt
