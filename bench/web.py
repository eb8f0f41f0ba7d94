"""Driver station input latency: a gamepad change in the browser page -> DeviceWrite at the device.

    .venv/bin/python bench/web.py [--changes 200]

``runtime up`` (embedded amqtt with its WebSocket listener, the sample program, teleop) and a
virtual KoalaBear in this process that notes when a DeviceWrite carrying the expected
``duty_cycle_a`` arrives. Two paths, ``--changes`` stick moves each:

- python: a Python MQTT client (``runtime.remote.Connection``) publishes ``input/gamepad/0``;
  from just before the publish. python_ws: the same from a paho client over WebSockets (the
  page's transport without the browser: tells the broker's WebSocket path from the page's).
- page: Debian's chromium (Playwright) runs the driver station; the test gamepad behind
  ``navigator.getGamepads`` changes; from the moment it changed in the page (the page polls
  the Gamepad API every 5 ms, as it must: the API has no change events), and also from the
  page's publish (``page_publish``), which leaves the polling out.
- estop: ``--estops`` times, driving at full stick, the space bar in the page -> the first
  DeviceWrite of ``duty_cycle_a = 0`` or Disable at the device ("within one frame": 16.7 ms);
  estop_python: the same stop asked by a Python client's ``set_mode("estop")``.

Both clocks are the machine's wall clock (the browser's ``performance.timeOrigin + now()``).
The sample program sets ``duty_cycle_a = joystick_left_y * 0.5``; teleop_main runs on every
input change (and every 20 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from playwright.async_api import async_playwright
from runtime.messages import GamepadInput, encode
from runtime.mqtt_server import free_port
from runtime.protocol import MessageType
from runtime.remote import Client, Connection
from runtime.virtual import VirtualDevice

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stats import summary

FAKE_GAMEPAD = """
window.testPads = [null, null, null, null];
window.setTestPad = (axes) => {
  window.testPads[0] = {id: "bench", index: 0, connected: true, mapping: "standard", axes,
    timestamp: performance.now(),
    buttons: Array.from({length: 17}, () => ({pressed: false, value: 0}))};
  return performance.timeOrigin + performance.now();
};
navigator.getGamepads = () => window.testPads;
"""


class TimedKoala(VirtualDevice):
    """A KoalaBear noting the wall-clock arrival of the DeviceWrite it waits for."""

    target: float | None = None
    arrival = 0.0

    def __init__(self) -> None:
        super().__init__("KoalaBear", 4242)
        self.arrived = asyncio.Event()

    def _handle(self, packet) -> None:  # type: ignore[no-untyped-def]
        now = time.time()
        super()._handle(packet)
        stopped = packet.type == MessageType.DISABLE and self.target == 0.0
        if stopped or (packet.type == MessageType.DEVICE_WRITE and self.target is not None
                       and abs(self.values["duty_cycle_a"] - self.target) < 1e-6):
            self.arrival = now
            self.target = None
            self.arrived.set()


async def measure(device: TimedKoala, changes: int, change) -> list[float]:  # type: ignore[no-untyped-def]
    """``change(value)`` moves the stick and returns when (wall clock) it moved."""
    samples = []
    for index in range(changes):
        value = (index % 9 + 1) / 10 * (1 if index % 2 else -1)
        device.arrived.clear()
        device.target = value * 0.5
        started = await change(value)
        await asyncio.wait_for(device.arrived.wait(), 5)
        samples.append((device.arrival - started) * 1000)
        await asyncio.sleep(random.uniform(0.01, 0.03))  # no phase lock with the 20 ms period
    return samples


def ws_publisher(robot: str, ws_port: int, topic: str):  # type: ignore[no-untyped-def]
    """A paho client over WebSockets (the page's transport, without the browser)."""
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, transport="websockets",
                         client_id=f"bench-ws-{robot}")
    client.ws_set_options(path="/mqtt")
    client.connect("127.0.0.1", ws_port)
    sock = client.socket()
    raw: Any = getattr(sock, "_socket", sock)  # paho wraps the socket for WebSockets
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.loop_start()

    async def change(value: float) -> float:
        started = time.time()
        pad = GamepadInput(buttons=0, axes=[0.0, value, 0.0, 0.0], ts=started)
        client.publish(topic, encode(pad))
        return started

    return change


async def estop_latency(page, client: Client, device: TimedKoala,  # type: ignore[no-untyped-def]
                        rounds: int, press) -> list[float]:
    """Driving at full stick from the page, ``press()`` (returns when, wall clock) -> the
    motor's 0 or Disable at the device."""
    samples = []
    for _ in range(rounds):
        await client.call("executor", "set_mode", "idle", clear_estop=True)  # estop latches
        await client.call("executor", "set_mode", "teleop")
        device.arrived.clear()
        device.target = 0.5
        await page.evaluate("setTestPad([0, -1, 0, 0])")
        await asyncio.wait_for(device.arrived.wait(), 5)
        device.arrived.clear()
        device.target = 0.0
        pressed = await press()
        await asyncio.wait_for(device.arrived.wait(), 5)
        samples.append((device.arrival - pressed) * 1000)
        await page.evaluate("setTestPad([0, 0, 0, 0])")
    return samples


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--estops", type=int, default=50)
    args = parser.parse_args()
    robot = f"bench{uuid.uuid4().hex[:6]}"
    port, web_port, ws_port = free_port(), free_port(), free_port()
    url = f"mqtt://127.0.0.1:{port}"
    state = Path(tempfile.mkdtemp(prefix="bench-web-"))
    socket_path = state / "virtual.sock"
    process = subprocess.Popen(
        [sys.executable, "-m", "runtime", "up", "--robot", robot, "--state-dir", str(state),
         "--listen", f"127.0.0.1:{port}", "--web", f"127.0.0.1:{web_port}", "--ws-port",
         str(ws_port), "--virtual-listen", f"unix:{socket_path}"],
        stdout=(state / "up.log").open("w"), stderr=subprocess.STDOUT)  # a file: never blocks
    device = TimedKoala()
    try:
        while "Runtime is up" not in (state / "up.log").read_text():
            if process.poll() is not None:
                raise SystemExit("runtime up did not start:\n" + (state / "up.log").read_text())
            await asyncio.sleep(0.1)
        device_task = asyncio.create_task(device.connect(f"unix:{socket_path}"))
        async with Connection(url, robot=robot) as connection:
            client = Client(connection)
            await client.call("broker", "set_alias", "koala", str(device.uid))
            await client.call("executor", "set_mode", "teleop")
            await asyncio.sleep(1.0)  # the device is known, the program is running

            async def python_change(value: float) -> float:
                started = time.time()
                pad = GamepadInput(buttons=0, axes=[0.0, value, 0.0, 0.0], ts=started)
                await connection.publish(connection.topics.gamepad(0), pad)
                return started

            python = await measure(device, args.changes, python_change)
            await connection.publish(connection.topics.gamepad(0), b"", qos=1)
            python_ws = await measure(device, args.changes,
                                      ws_publisher(robot, ws_port, connection.topics.gamepad(0)))
            await connection.publish(connection.topics.gamepad(0), b"", qos=1)

            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                    args=["--no-sandbox"])
                page = await browser.new_page()
                await page.add_init_script(FAKE_GAMEPAD)
                await page.goto(f"http://127.0.0.1:{web_port}/")
                await page.wait_for_selector('#connection[data-state="connected"]')
                await page.evaluate("""() => { const send = window.driverStation.driver.send;
                    window.published = [];
                    window.driverStation.driver.send = (topic, value, qos) => {
                      if (topic.startsWith('input/gamepad') && value)
                        window.published.push(
                          [value.axes[1], performance.timeOrigin + performance.now()]);
                      return send(topic, value, qos);
                    }; }""")
                marks: list[float] = []

                async def page_change(value: float) -> float:
                    changed = await page.evaluate("v => setTestPad([0, -v, 0, 0])", value)
                    marks.append(changed)
                    return changed / 1000

                page_samples = await measure(device, args.changes, page_change)
                published = await page.evaluate("window.published")

                async def space_bar() -> float:
                    return await page.evaluate("""() => {
                        const at = performance.timeOrigin + performance.now();
                        window.dispatchEvent(new KeyboardEvent("keydown", {key: " "}));
                        return at; }""") / 1000

                async def python_estop() -> float:
                    started = time.time()
                    connection.spawn(client.call("executor", "set_mode", "estop"))
                    return started

                estops = await estop_latency(page, client, device, args.estops, space_bar)
                python_estops = await estop_latency(page, client, device, args.estops,
                                                    python_estop)
                await browser.close()
            await client.call("executor", "set_mode", "idle")
        # page publish -> DeviceWrite: the first publish after each change.
        publish_samples = []
        for changed, total in zip(marks, page_samples, strict=True):
            after = [at for _, at in published if at >= changed]
            if after:
                publish_samples.append(total - (after[0] - changed))
        device_task.cancel()
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(30)
        shutil.rmtree(state, ignore_errors=True)
    results = {"python": summary(python), "python_ws": summary(python_ws),
               "page": summary(page_samples),
               "page_publish": summary(publish_samples), "estop": summary(estops),
               "estop_python": summary(python_estops)}
    for name, figures in results.items():
        print(f"{name:>12}: median {figures['median']:.2f} ms, p99 {figures['p99']:.2f} ms, "
              f"max {figures['max']:.2f} ms ({figures['samples']} changes)")
    print(json.dumps({"benchmark": "web", "unit": "ms", **results}))


if __name__ == "__main__":
    asyncio.run(main())
