"""Shared-memory cleanup for ``runtime up``: after every service has stopped, nothing of the
robot may be left in ``/dev/shm`` (a service killed with SIGKILL cannot unlink its own)."""

from __future__ import annotations

from runtime.buffer.segment import reclaim


def cleanup(robot: str) -> int:
    """Remove the robot's segments whose owner is gone; how many were removed."""
    return len(reclaim(robot))
