"""Executor frozen or killed -> motors 0 and Disable at a device, through the liveness counter.

    .venv/bin/python bench/liveness.py [--freezes 50] [--kills 5]

Real processes as in production: Mosquitto, ``runtime service device`` and ``runtime service
executor`` (student code drives a KoalaBear at 0.5 in auto); the virtual KoalaBear runs here and
stamps the moment it decodes the Disable. One sample: SIGSTOP (or SIGKILL) of the executor ->
Disable decoded at the device. docs/contract.md (Safety): within 300 ms. Prints median/p99/max
in ms and JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import timed
from devices import start_mosquitto
from runtime import protocol
from runtime.protocol import MessageType, Packet
from runtime.remote import Client, Connection
from runtime.virtual import VirtualDevice
from stats import summary

RUNTIME = [sys.executable, "-m", "runtime"]
UID = protocol.make_uid(13, 1, 77)
CODE = f'''
def autonomous_setup():
    pass

def autonomous_main():
    Robot.set_value("{UID}", "duty_cycle_a", 0.5)
'''


class StampingDevice(VirtualDevice):
    """A KoalaBear that notes when it decodes a Disable."""

    disabled_at = 0.0

    def _handle(self, packet: Packet) -> None:
        if packet.type == MessageType.DISABLE and not self.disabled:
            self.disabled_at = time.perf_counter()
        super()._handle(packet)


#: waits polled every 2 ms (figures come from stamps taken where events arrive: a poll only
#: ends a wait)
until = functools.partial(timed.until, timeout=30.0, interval=0.002)


def start_executor(url: str, robot: str, state: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*RUNTIME, "service", "executor", "--mqtt", url, "--robot", robot,
                             "--state-dir", str(state)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


async def drive(client: Client, device: StampingDevice) -> None:
    """Auto mode, motor at 0.5 (retry while a fresh executor has not subscribed yet)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            await client.call("executor", "set_mode", "auto", timeout=1.0)
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
    await until(lambda: device.values["duty_cycle_a"] == 0.5 and not device.disabled,
                what="the motor to run")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--freezes", type=int, default=50)
    parser.add_argument("--kills", type=int, default=5)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="rt-bench-"))
    (directory / "state").mkdir()
    (directory / "state" / "studentcode.py").write_text(CODE)
    mosquitto, url = start_mosquitto(directory)
    robot = f"bench{uuid.uuid4().hex[:6]}"
    address = f"unix:{directory / 'vsd.sock'}"
    service = subprocess.Popen(
        [*RUNTIME, "service", "device", "--mqtt", url, "--robot", robot, "--observer", "poll",
         "--serial-glob", str(directory / "none*"), "--virtual-listen", address,
         "--state-dir", str(directory / "state")],
        stdout=subprocess.DEVNULL, stderr=(directory / "device.log").open("w"))
    executor = start_executor(url, robot, directory / "state")
    try:
        await until(lambda: (directory / "vsd.sock").exists(), what="the device service")
        device = StampingDevice("KoalaBear", UID)
        task = asyncio.create_task(device.connect(address))
        async with Connection(url, robot=robot) as connection:
            client = Client(connection)
            await client.start()
            await drive(client, device)
            freezes = []
            for _ in range(args.freezes):
                device.disabled_at = 0.0
                start = time.perf_counter()
                os.kill(executor.pid, signal.SIGSTOP)
                await until(lambda: device.disabled_at, what="the Disable")
                freezes.append((device.disabled_at - start) * 1000)
                os.kill(executor.pid, signal.SIGCONT)
                await until(lambda: device.values["duty_cycle_a"] == 0.5 and not device.disabled,
                            what="the motor to resume")
            kills = []
            for _ in range(args.kills):
                device.disabled_at = 0.0
                start = time.perf_counter()
                executor.kill()
                await until(lambda: device.disabled_at, what="the Disable")
                kills.append((device.disabled_at - start) * 1000)
                executor.wait(10)
                executor = start_executor(url, robot, directory / "state")
                await drive(client, device)
        task.cancel()
        result = {"benchmark": "liveness", "frozen_to_disable_ms": summary(freezes),
                  "killed_to_disable_ms": summary(kills) if kills else None}
        for name in ("frozen_to_disable_ms", "killed_to_disable_ms"):
            figures = result[name]
            if figures:
                print(f"{name}: median {figures['median']:.1f} ms, p99 {figures['p99']:.1f} ms, "
                      f"max {figures['max']:.1f} ms over {figures['samples']}")
        print(json.dumps(result))
    finally:
        for process in (executor, service, mosquitto):
            process.send_signal(signal.SIGCONT)
            process.terminate()
            process.wait(10)
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
