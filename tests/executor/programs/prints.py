"""Every form of print a student may use."""

import sys


def teleop_setup():
    print("plain", 1, 2.5, None)
    print("a", "b", sep="-", end="!\n")
    print("no newline", end="")
    print(" then the rest")
    print("to stderr", file=sys.stderr)
    print("flushed", flush=True)
    print()
    print("sep none", "end none", sep=None, end=None)


def teleop_main():
    pass
