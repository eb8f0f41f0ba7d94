"""``--simulate TYPE[:UID]``: virtual smart devices that ``runtime up`` runs in its own process.

TYPE is a Hibike type name or a lowcar one qualified by its generation (``lowcar.KoalaBear``).

Each one connects to the device service's virtual-device socket and, whenever that connection
ends (the device service restarted), connects again under the same uid, as a real device stays
plugged in while the service restarts.

UIDs are stable: ``--simulate KoalaBear`` without a uid gets the id part 1 (the second one 2,
and so on, per type, skipping the ids given explicitly), so the same command line gives the
same uids at every start and a student's aliases keep working. Two ``--simulate`` of one uid
are refused before anything starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from runtime.catalog import default_catalog
from runtime.exception import CatalogError, DeviceError
from runtime.virtual import VirtualDevice, make_virtual_uid
from runtime.virtual_lowcar import VirtualLowcarDevice

log = logging.getLogger("runtime.up")

RECONNECT_DELAY = 0.2


class SimulatedDevice:
    """One ``--simulate`` device: ``start(address)``, ``await stop()``."""

    def __init__(self, type_name: str, uid: str | int | None = None) -> None:
        self.device_type = device_type = default_catalog().get(type_name)
        self.type_name = device_type.qualified_name
        self.uid = str(make_virtual_uid(device_type, 1 if uid is None else uid))
        self.device: VirtualDevice | VirtualLowcarDevice | None = None
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def parse(cls, spec: str, default_id: int = 1) -> SimulatedDevice:
        """``TYPE`` or ``TYPE:UID`` (UID: the full decimal uid or its 64-bit id part); a
        ``TYPE`` alone gets the id part ``default_id``."""
        type_name, _, uid = spec.partition(":")  # a uid is checked by Uid.parse, the one parser
        try:
            return cls(type_name, uid or default_id)
        except (CatalogError, DeviceError) as exc:
            raise DeviceError(f"--simulate {spec}: {exc.message}", spec=spec) from None

    @classmethod
    def parse_all(cls, specs: Iterable[str]) -> list[SimulatedDevice]:
        """Every ``--simulate``, with stable uids for those without one; duplicates refused."""
        specs = list(specs)
        explicit = [cls.parse(spec) for spec in specs if ":" in spec]
        taken = {int(device.uid) for device in explicit}
        devices: list[SimulatedDevice] = []
        given: dict[str, str] = {}
        next_id: dict[str, int] = {}
        for spec in specs:
            if ":" in spec:
                device = explicit.pop(0)
            else:
                type_name = cls.parse(spec).type_name
                candidate = next_id.get(type_name, 1)
                device = cls.parse(spec, candidate)
                while int(device.uid) in taken:  # an id given explicitly to another device
                    candidate += 1
                    device = cls.parse(spec, candidate)
                next_id[type_name] = candidate + 1
            if device.uid in given:
                raise DeviceError(
                    f"--simulate {given[device.uid]} and --simulate {spec} are the same device "
                    f"(uid {device.uid}): give each its own uid", uid=device.uid)
            given[device.uid] = spec
            taken.add(int(device.uid))
            devices.append(device)
        return devices

    def start(self, address: str) -> None:
        self._task = asyncio.create_task(self._run(address), name=f"simulate {self.uid}")

    async def _run(self, address: str) -> None:
        announced = False
        while True:
            self.device = (VirtualLowcarDevice(self.device_type, self.uid)
                           if self.device_type.generation == "lowcar"
                           else VirtualDevice(self.device_type, self.uid))
            try:
                await self.device.connect(address)
            except (OSError, DeviceError) as exc:
                if not announced:
                    log.debug("simulated %s %s waiting for the device service (%s)",
                              self.type_name, self.uid, exc)
            else:
                log.info("simulated %s %s: connection closed; reconnecting", self.type_name,
                         self.uid)
            announced = True
            await asyncio.sleep(RECONNECT_DELAY)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
