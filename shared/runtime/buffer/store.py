"""``BufferStore``: every buffer of one robot, created or attached by key.

Keys: a device's uid (decimal string), a gamepad index (0..3), the keyboard. Segment names carry
the robot name (``runtime.<robot>@device.<uid>``), so two robots or two test runs on one host
never meet. Who creates what: the device service creates device buffers, the broker service the
gamepad and keyboard buffers; everyone else attaches. ``close()`` closes everything the store
opened and unlinks what it created.
"""

from __future__ import annotations

import logging
import re

from runtime.buffer.base import Buffer
from runtime.buffer.device import SIZE as DEVICE_SIZE
from runtime.buffer.device import DeviceBuffer
from runtime.buffer.inputs import GAMEPAD_PARAMS, GAMEPADS, GamepadBuffer, KeyboardBuffer
from runtime.buffer.inputs import SIZE as INPUT_SIZE
from runtime.buffer.segment import Segment, list_segments, reclaim, robot_prefix, segment_name
from runtime.catalog import Catalog, DeviceType, Parameter, default_catalog
from runtime.exception import BufferStoreError, CatalogError
from runtime.protocol.uid import Uid, UidError

log = logging.getLogger(__name__)
ROBOT_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


class BufferStore:
    """Opens, creates and closes the buffers of one robot (see the module docstring)."""

    def __init__(self, robot: str = "robot", catalog: Catalog | None = None) -> None:
        if not ROBOT_NAME.match(robot):
            raise BufferStoreError(
                f"robot name {robot!r} is not allowed: use letters, digits, '_', '.', '-'",
                robot=robot,
            )
        self.robot = robot
        self.catalog = catalog or default_catalog()
        self._open: list[Buffer] = []

    # -- devices -------------------------------------------------------------------------------

    def create_device(self, uid: str | int, device_type: str | int | DeviceType) -> DeviceBuffer:
        """Create (and own) the buffer of a device; the device service calls this."""
        key = _uid_key(uid)
        kind = device_type if isinstance(device_type, DeviceType) else self._type(device_type)
        if (key >> 72) != kind.uid_type:
            raise BufferStoreError(
                f"uid {key} is of device type {key >> 72}, not {kind.qualified_name} "
                f"({kind.uid_type})", uid=str(key), device_type=kind.name,
            )
        segment = Segment.create(segment_name(self.robot, "device", str(key)), DEVICE_SIZE)
        return self._keep(DeviceBuffer(segment, str(key), kind))

    def open_device(self, uid: str | int) -> DeviceBuffer:
        """Attach to a device's buffer; BufferStoreError if the device service has none."""
        key = _uid_key(uid)
        kind = self._type(key >> 72)
        segment = Segment.attach(segment_name(self.robot, "device", str(key)),
                                 f"device {key} ({kind.name})")
        return self._keep(DeviceBuffer(segment, str(key), kind))

    def device_uids(self) -> list[str]:
        """Uids of the devices that have a buffer on this robot now."""
        prefix = robot_prefix(self.robot) + "device."
        return [name[len(prefix):] for name in list_segments(self.robot)
                if name.startswith(prefix)]

    # -- driver input --------------------------------------------------------------------------

    def gamepad(self, index: int, create: bool = False) -> GamepadBuffer:
        """Gamepad ``index`` (0..3): created by the broker service, attached by the others."""
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < GAMEPADS:
            raise BufferStoreError(f"gamepad index must be 0..{GAMEPADS - 1}, not {index!r}",
                                   index=index)
        name = segment_name(self.robot, "gamepad", str(index))
        segment = (Segment.create(name, INPUT_SIZE) if create
                   else Segment.attach(name, f"gamepad {index}"))
        return self._keep(GamepadBuffer(segment, index))

    def keyboard(self, create: bool = False) -> KeyboardBuffer:
        name = segment_name(self.robot, "keyboard", "0")
        segment = Segment.create(name, INPUT_SIZE) if create else Segment.attach(name, "keyboard")
        return self._keep(KeyboardBuffer(segment))

    @staticmethod
    def gamepad_params() -> list[Parameter]:
        """The gamepad's parameters: 17 buttons (bool), then 4 axes (float in [-1, 1])."""
        return list(GAMEPAD_PARAMS)

    # -- housekeeping --------------------------------------------------------------------------

    def reclaim(self, kinds: tuple[str, ...] | None = None) -> list[str]:
        """Remove this robot's segments whose owner died (kinds: "device", "gamepad",
        "keyboard"; default all). Services call it at start; it never touches live ones."""
        removed = reclaim(self.robot, kinds)
        for name in removed:
            log.info("removed shared-memory buffer %s left by a process that died", name)
        return removed

    def close(self) -> None:
        """Close every buffer opened through this store (owners unlink theirs)."""
        while self._open:
            self._open.pop().close()

    def forget(self, buffer: Buffer) -> None:
        """Close one buffer now (e.g. a device that went away)."""
        buffer.close()
        if buffer in self._open:
            self._open.remove(buffer)

    def __enter__(self) -> BufferStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _keep(self, buffer: Buffer) -> any:  # type: ignore[valid-type]
        self._open = [b for b in self._open if not b.closed]
        self._open.append(buffer)
        return buffer

    def _type(self, key: str | int) -> DeviceType:
        try:
            return self.catalog.get(key)
        except CatalogError as exc:
            raise BufferStoreError(exc.message, **exc.context) from None


def _uid_key(uid: str | int | Uid) -> int:
    """The uid as an int (``runtime.protocol.uid`` is the one parser)."""
    try:
        return Uid.parse(uid).value
    except UidError as exc:
        raise BufferStoreError(exc.message, uid=repr(uid)) from None
