"""Dawn's gamepad to the motor through the gateway, beside the same path from an MQTT client.

    ./run bench gateway [--changes 300] [--reconnects 100] [--embedded] [--quick]

A robot (``runtime up`` on Mosquitto, or ``--embedded`` on its own broker) runs a program
whose ``teleop_main`` copies ``joystick_left_y`` to a KoalaBear's ``duty_cycle_a``. The
KoalaBear is a virtual device in this process that timestamps each DeviceWrite it receives
(``timed.TimedKoala``). Each change of the stick is sent (a) as a Dawn INPUTS frame to the
gateway service that ``runtime up`` runs (``--gateway`` on a free port; no web page, so no
fixed port is needed) and (b) as ``input/gamepad/0`` from a plain MQTT client; the figure is
the time from sending to the DeviceWrite carrying that value, median / p99 / max, every
20-40 ms. Then ``--reconnects`` Dawn connections open and close; the gateway's open files,
threads and memory before and after show whether a connection leaks anything.

Every wait has a deadline and stops the bench with what it waited for (and the robot's log
when ``runtime up`` exited): ``--quick`` (30 changes, 10 reconnects) is what the test suite
runs, so the bench cannot silently stop working.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
from devices import start_mosquitto
from runtime.messages import GamepadInput, encode
from runtime.mqtt_server import free_port
from runtime.remote import Client, Connection
from runtime.service.gateway.proto import pie_client_pb2 as pb
from stats import summary
from timed import TimedKoala, until

PROGRAM = '''
def teleop_main():
    Robot.set_value("koala", "duty_cycle_a", Gamepad.get_value("joystick_left_y"))
'''
HEADER = struct.Struct("<BH")
#: How long starting things may take (the robot, its services, the gateway's port).
START_TIMEOUT = 60.0
#: How long one change (or one reconnect's answer) may take before the bench gives up.
ARRIVAL_TIMEOUT = 5.0


def frame(kind: int, message: Any) -> bytes:
    body = message.SerializeToString()
    return HEADER.pack(kind, len(body)) + body


def stick(y: float) -> bytes:
    return frame(5, pb.UserInputs(inputs=[pb.Input(connected=True, axes=[0.0, y, 0.0, 0.0])]))


async def measure(device: TimedKoala, send: Any, changes: int, path: str) -> list[float]:
    samples = []
    for index in range(changes):
        value = round(random.uniform(-0.9, 0.9), 3)
        device.expect(value)
        start = time.monotonic_ns()
        await send(value)
        try:
            arrival = await device.arrival(ARRIVAL_TIMEOUT, f"the change to {value} sent {path}")
        except TimeoutError as lost:
            raise SystemExit(str(lost)) from None
        samples.append((arrival - start) / 1e6)
        await asyncio.sleep(random.uniform(0.02, 0.04))
        if index % 4 == 0:
            await send(value)  # a repeat (driver stations resend every 100 ms): no change
    return samples


class Robot:
    """``runtime up`` (its gateway on a free port, no web page) and how to give up on it."""

    def __init__(self, directory: Path, broker_args: list[str], gateway_port: int) -> None:
        self.robot = f"bench{uuid.uuid4().hex[:6]}"
        self.log_path = directory / "robot.log"
        self.address = f"unix:{directory / 'virtual.sock'}"
        self.gateway_port = gateway_port
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "runtime", "up", "--robot", self.robot, "--state-dir",
                 str(directory), "--virtual-listen", self.address, "--web", "off",
                 "--gateway", f"127.0.0.1:{gateway_port}", *broker_args],
                stdout=log, stderr=log)

    def gone(self) -> str | None:
        """Why waiting on this robot is pointless (``runtime up`` exited, or runs without its
        gateway), with the end of its log."""
        code = self.process.poll()
        log = self.log_path.read_text(errors="replace")
        if code is not None:
            reason = f"runtime up exited with status {code}"
        elif "gateway not started" in log:
            reason = "runtime up did not start its gateway"
        else:
            return None
        return f"{reason}; its log ends:\n" + "\n".join(log.splitlines()[-15:])

    def gateway(self) -> psutil.Process | None:
        """The gateway service ``runtime up`` started (None until it runs)."""
        with contextlib.suppress(psutil.NoSuchProcess):
            for child in psutil.Process(self.process.pid).children(recursive=True):
                with contextlib.suppress(psutil.NoSuchProcess):
                    if child.cmdline()[3:5] == ["service", "gateway"]:  # python -m runtime
                        return child
        return None

    async def dawn(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """A connection to the gateway's port (None while it does not listen yet)."""
        try:
            return await asyncio.open_connection("127.0.0.1", self.gateway_port)
        except OSError:
            return None


async def run(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    processes: list[subprocess.Popen[bytes]] = []
    if args.embedded:
        url = f"mqtt://127.0.0.1:{free_port()}"
        broker_args = ["--listen", url.removeprefix("mqtt://")]
    else:
        mosquitto, url = start_mosquitto(directory)
        processes.append(mosquitto)
        broker_args = ["--mqtt", url]
    robot = Robot(directory, broker_args, free_port())
    processes.append(robot.process)
    try:
        await until(lambda: (directory / "virtual.sock").exists(), START_TIMEOUT,
                    "runtime up's virtual-device socket", abort=robot.gone)
        device = TimedKoala()
        device_task = asyncio.create_task(device.connect(robot.address))
        async with Connection(url, robot=robot.robot) as connection:
            await connection.wait_connected(10)
            client = Client(connection)
            calls = Calls(client, robot.gone)
            await calls.retried("broker", "set_alias", "koala", str(device.uid))
            await calls.retried("executor", "upload", PROGRAM)
            await until(lambda: calls.lists_device(device.uid), START_TIMEOUT,
                        "the device service to list the virtual KoalaBear", abort=robot.gone)
            gateway = await until(robot.gateway, START_TIMEOUT,
                                  "runtime up to start its gateway service", abort=robot.gone)
            reader, writer = await until(
                robot.dawn, START_TIMEOUT,
                f"the gateway to accept Dawn on 127.0.0.1:{robot.gateway_port}",
                abort=robot.gone)
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
            gateway_ms = await measure(device, via_gateway, args.changes, "as Dawn INPUTS")
            writer.close()
            drain.cancel()
            await asyncio.sleep(0.5)  # Dawn's disconnect sets idle: let that land first
            await client.call("executor", "set_mode", "teleop", timeout=5)
            await asyncio.sleep(0.5)
            mqtt_ms = await measure(device, via_mqtt, args.changes, "on input/gamepad/0")
            await client.call("executor", "set_mode", "idle", timeout=5)
            leaks = await reconnects(gateway, robot.gateway_port, args.reconnects)
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
                process.wait(5)


class Calls:
    """RPCs to a robot that is still starting: retried until its service answers."""

    def __init__(self, client: Client, gone: Callable[[], str | None]) -> None:
        self.client = client
        self.gone = gone

    async def retried(self, service: str, method: str, *args: Any) -> Any:
        """``service.method(*args)``, retried for up to START_TIMEOUT s while it fails."""
        failures: list[str] = []

        async def attempt() -> tuple[Any] | None:
            try:
                return (await self.client.call(service, method, *args, timeout=1),)
            except Exception as exc:  # not up yet: try again (the last reason is reported)
                failures[:] = [f"{type(exc).__name__}: {exc}"]
                return None

        try:
            (result,) = await until(attempt, START_TIMEOUT, f"{service}.{method} to answer",
                                    abort=self.gone)
        except SystemExit as exc:
            raise SystemExit(f"{exc} (last error: {failures[-1] if failures else 'none'})") \
                from None
        return result

    async def lists_device(self, uid: int) -> bool:
        listed = await self.retried("device", "list")
        return any(entry.get("uid") == str(uid) for entry in listed)


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
    for index in range(count):
        what = f"Dawn connection {index + 1} of {count} to the gateway on port {port}"
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port), ARRIVAL_TIMEOUT)
            writer.write(b"\x01" + stick(0.0) + frame(6, pb.TimeStamps(dawn_timestamp=1)))
            await writer.drain()
            # the robot answers (TIME_STAMPS or DEVICE_DATA)
            answer = await asyncio.wait_for(reader.read(3), ARRIVAL_TIMEOUT)
            writer.close()
            await asyncio.wait_for(writer.wait_closed(), ARRIVAL_TIMEOUT)
        except TimeoutError:
            raise SystemExit(f"{what}: no answer within {ARRIVAL_TIMEOUT:g} s") from None
        if not answer:
            raise SystemExit(f"{what}: the gateway closed it without answering")
    await asyncio.sleep(1.0)
    return {"count": count, "before": before, "after": state()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=300)
    parser.add_argument("--reconnects", type=int, default=100)
    parser.add_argument("--embedded", action="store_true", help="the embedded broker")
    parser.add_argument("--quick", action="store_true", help="30 changes, 10 reconnects")
    args = parser.parse_args()
    if args.quick:
        args.changes, args.reconnects = 30, 10
    directory = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    try:
        result = asyncio.run(run(args, directory))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    for name, path in (("gateway_ms", "Dawn INPUTS -> gateway"),
                       ("mqtt_ms", "input/gamepad/0 (MQTT)")):
        figures = result[name]
        print(f"{path:24s} -> DeviceWrite: median {figures['median']:.3f} ms, "
              f"p99 {figures['p99']:.3f} ms, max {figures['max']:.3f} ms "
              f"({figures['samples']} changes, {result['broker']})")
    leaks = result["reconnects"]
    print(f"{leaks['count']} Dawn reconnects: gateway before {leaks['before']}, "
          f"after {leaks['after']}")
    print(json.dumps({"benchmark": "gateway", **result}))


if __name__ == "__main__":
    os.environ.setdefault("NO_COLOR", "1")
    main()
