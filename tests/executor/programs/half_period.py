"""autonomous_main takes half of its period (the test runs it with a 0.3 s period): a loop
that sleeps a period after each call drifts."""

import time

main_calls = 0
main_times = []


def autonomous_main():
    global main_calls
    main_calls += 1
    main_times.append(time.monotonic())
    time.sleep(0.15)
