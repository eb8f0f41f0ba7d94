"""Fails while loading."""

VALUES = [1, 2, 3]
LIMIT = VALUES[7]


def teleop_main():
    pass
