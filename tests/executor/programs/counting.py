"""Counts setup and main calls of both modes, and when main was called."""

import time

setup_calls = 0
main_calls = 0
main_times = []


def autonomous_setup():
    global setup_calls
    setup_calls += 1


def autonomous_main():
    global main_calls
    main_calls += 1
    main_times.append(time.monotonic())


def teleop_setup():
    global setup_calls
    setup_calls += 1
    print("teleop setup")


def teleop_main():
    global main_calls
    main_calls += 1
    main_times.append(time.monotonic())
