"""teleop_main's first call waits until the test releases it (driver input piles up meanwhile)."""

import threading

release = threading.Event()
main_calls = 0


def teleop_main():
    global main_calls
    main_calls += 1
    if main_calls == 1:
        release.wait(30)
