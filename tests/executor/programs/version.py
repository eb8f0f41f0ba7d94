"""Says which version of the program runs (tests upload a changed copy)."""

VERSION = 1


def teleop_setup():
    print(f"version {VERSION}")
