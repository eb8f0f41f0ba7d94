"""Wire and safety constants shared by several services: each one is defined here, once.

Why a module of its own: the same number used to be written in two services (the 500 ms input
freshness in the broker and the device service) and "motor to 0" was spelled four ways. A value
that two processes must agree on lives here and both import it.
"""

from __future__ import annotations

from typing import Any

#: Seconds: driver input (gamepad or keyboard) older than this counts as none, so teleop holds
#: the motors at 0 (docs/contract.md, Safety). The broker marks input stale after it; the device
#: service holds motors after it.
INPUT_FRESHNESS = 0.5

#: Modes in which motors may move (under the other stop rules).
RUNNING_MODES = ("auto", "teleop")

#: Seconds between two beats of the executor's liveness counter (runtime.buffer.liveness).
LIVENESS_PERIOD = 0.02

#: Seconds between two beats while the executor has stated idle or estop: the motors are held by
#: the mode then, whatever the counter says, and a stated auto or teleop beats at once and goes
#: back to ``LIVENESS_PERIOD`` (an idle executor woke 50 times a second for its beat alone).
LIVENESS_HELD_PERIOD = 0.5

#: Seconds without a beat after which the device service counts the executor as stopped and
#: stops the motors (docs/contract.md: within 300 ms; the beat period and the device service's check
#: period come on top of this).
LIVENESS_TIMEOUT = 0.2

#: Bytes: the largest payload a host may send to a device (the firmware's buffer).
MAX_WRITE_PAYLOAD = 99



def motor_stop_values(device_type: Any) -> dict[str, Any]:
    """``{param: 0}`` for every motor param of a catalog ``DeviceType`` (``motor = true`` in
    catalog.toml, the one place that names motor params), each 0 of the param's own type. The
    one spelling of "motors to 0": the device service and the executor both send this."""
    return {p.name: p.python_type(0) for p in device_type.motor_params}
