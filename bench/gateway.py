"""Dawn's gamepad to the motor through the gateway, beside the same path from an MQTT client.

    ./run bench gateway [--changes 300] [--reconnects 100] [--embedded]

A robot (``runtime up`` on Mosquitto, or ``--embedded`` on its own broker) runs a program
whose ``teleop_main`` copies ``joystick_left_y`` to a KoalaBear's ``duty_cycle_a``. The
KoalaBear is a virtual device in this process that timestamps each DeviceWrite it receives.
Each change of the stick is sent (a) as a Dawn INPUTS frame to ``runtime service gateway`` and
(b) as ``input/gamepad/0`` from a plain MQTT client; the figure is the time from sending to the
DeviceWrite carrying that value, median / p99 / max, every 20-40 ms. Then ``--reconnects``
Dawn connections open and close; the gateway's open files, threads and memory before and
after show whether a connection leaks anything.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
from devices import start_mosquitto
from runtime.messages import GamepadInput, encode
from runtime.mqtt_server import free_port
from runtime.remote import Client, Connection
from runtime.service.gateway.proto import pie_client_pb2 as pb
from runtime.virtual import VirtualDevice
from stats import summary

PROGRAM = '''
def teleop_main():
    Robot.set_value("koala", "duty_cycle_a", Gamepad.get_value("joystick_left_y"))
'''
HEADER = struct.Struct("<BH")


class TimedKoala(VirtualDevice):
    """Records when a DeviceWrite with ``duty_cycle_a == expected`` arrives."""

    expected: float | None = None
    arrival = 0.0
    arrived: asyncio.Event

    def _apply(self, written: dict[str, Any]) -> None:
        value = written.get("duty_cycle_a")
        if self.expected is not None and value is not None and abs(value - self.expected) < 1e-4:
            self.arrival = time.perf_counter()
            self.arrived.set()
        super()._apply(written)


def frame(kind: int, message: Any) -> bytes:
    body = message.SerializeToString()
    return HEADER.pack(kind, len(body)) + body


def stick(y: float) -> bytes:
    return frame(5, pb.UserInputs(inputs=[pb.Input(connected=True, axes=[0.0, y, 0.0, 0.0])]))


async def measure(device: TimedKoala, send: Any, changes: int) -> list[float]:
    samples = []
    for index in range(changes):
        value = round(random.uniform(-0.9, 0.9), 3)
        device.expected = value
        device.arrived.clear()
        start = time.perf_counter()
        await send(value)
        await asyncio.wait_for(device.arrived.wait(), 5)
        samples.append((device.arrival - start) * 1000)
        await asyncio.sleep(random.uniform(0.02, 0.04))
        if index % 4 == 0:
            await send(value)  # a repeat (driver stations resend every 100 ms): no change
    device.expected = None
    return samples


async def run(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    robot = f"bench{uuid.uuid4().hex[:6]}"
    processes: list[subprocess.Popen[bytes]] = []
    if args.embedded:
        url = f"mqtt://127.0.0.1:{free_port()}"
        broker_args = ["--listen", url.removeprefix("mqtt://")]
    else:
        mosquitto, url = start_mosquitto(directory)
        processes.append(mosquitto)
        broker_args = ["--mqtt", url]
    address = f"unix:{directory / 'virtual.sock'}"
    log = (directory / "robot.log").open("w")
    processes.append(subprocess.Popen(
        [sys.executable, "-m", "runtime", "up", "--robot", robot, "--state-dir",
         str(directory), "--virtual-listen", address, *broker_args], stdout=log, stderr=log))
    gateway_port = free_port()
    (directory / "gw").mkdir()
    (directory / "gw" / "options.json").write_text(json.dumps(
        {"gateway_host": "127.0.0.1", "gateway_port": gateway_port}))
    gateway = subprocess.Popen(
        [sys.executable, "-m", "runtime", "service", "gateway", "--mqtt", url, "--robot", robot,
         "--state-dir", str(directory / "gw")], stdout=log, stderr=log)
    processes.append(gateway)
    try:
        while not (directory / "virtual.sock").exists():
            await asyncio.sleep(0.05)
        device = TimedKoala("KoalaBear")
        device.arrived = asyncio.Event()
        device_task = asyncio.create_task(device.connect(address))
        async with Connection(url, robot=robot) as connection:
            await connection.wait_connected(10)
            client = Client(connection)
            await retried(client, "broker", "set_alias", "koala", str(device.uid))
            await retried(client, "executor", "upload", PROGRAM)
            while True:
                try:
                    reader, writer = await asyncio.open_connection("127.0.0.1", gateway_port)
                    break
                except OSError:
                    await asyncio.sleep(0.05)
            writer.write(b"\x01" + stick(0.0) + frame(0, pb.RunMode(mode=pb.TELEOP)))
            await writer.drain()
            drain = asyncio.create_task(_discard(reader))

            async def via_gateway(value: float) -> None:
                writer.write(stick(value))
                await writer.drain()

            async def via_mqtt(value: float) -> None:
                await connection.publish(connection.topics.gamepad(0), encode(
                    GamepadInput(buttons=0, axes=[0.0, value, 0.0, 0.0], ts=time.time())))

            await asyncio.sleep(1.0)  # teleop_setup done, the first inputs through
            gateway_ms = await measure(device, via_gateway, args.changes)
            writer.close()
            drain.cancel()
            await asyncio.sleep(0.5)  # Dawn's disconnect sets idle: let that land first
            await client.call("executor", "set_mode", "teleop", timeout=5)
            await asyncio.sleep(0.5)
            mqtt_ms = await measure(device, via_mqtt, args.changes)
            await client.call("executor", "set_mode", "idle", timeout=5)
            leaks = await reconnects(psutil.Process(gateway.pid), gateway_port, args.reconnects)
        device_task.cancel()
        await asyncio.gather(device_task, return_exceptions=True)
        return {"broker": "embedded amqtt" if args.embedded else "mosquitto",
                "gateway_ms": summary(gateway_ms), "mqtt_ms": summary(mqtt_ms),
                "reconnects": leaks}
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()


async def retried(client: Client, service: str, method: str, *args: Any) -> Any:
    """A call retried until its service has started (for up to 30 s)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return await client.call(service, method, *args, timeout=1)
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def _discard(reader: asyncio.StreamReader) -> None:
    while await reader.read(65536):
        pass


async def reconnects(process: psutil.Process, port: int, count: int) -> dict[str, Any]:
    """Open and close ``count`` Dawn connections (each with one INPUTS and a TIME_STAMPS)."""
    def state() -> dict[str, int]:
        return {"open_files": process.num_fds(), "threads": process.num_threads(),
                "rss_kb": process.memory_info().rss // 1024}

    await asyncio.sleep(0.5)
    before = state()
    for _ in range(count):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"\x01" + stick(0.0) + frame(6, pb.TimeStamps(dawn_timestamp=1)))
        await writer.drain()
        await reader.read(3)  # the robot answers (TIME_STAMPS or DEVICE_DATA)
        writer.close()
        await writer.wait_closed()
    await asyncio.sleep(1.0)
    return {"count": count, "before": before, "after": state()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=300)
    parser.add_argument("--reconnects", type=int, default=100)
    parser.add_argument("--embedded", action="store_true", help="the embedded broker")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    try:
        result = asyncio.run(run(args, directory))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    for name in ("gateway_ms", "mqtt_ms"):
        figures = result[name]
        print(f"{name[:-3]:8s} INPUTS -> DeviceWrite: median {figures['median']:.3f} ms, "
              f"p99 {figures['p99']:.3f} ms, max {figures['max']:.3f} ms "
              f"({figures['samples']} changes, {result['broker']})")
    leaks = result["reconnects"]
    print(f"{leaks['count']} Dawn reconnects: gateway before {leaks['before']}, "
          f"after {leaks['after']}")
    print(json.dumps({"benchmark": "gateway", **result}))


if __name__ == "__main__":
    os.environ.setdefault("NO_COLOR", "1")
    main()
