"""Gamepad to motor, end to end: ``input/gamepad/0`` published -> DeviceWrite read by a device.

    ./run bench e2e [--changes 500] [--broker mosquitto|embedded|both] [--hops] [--json]

The path measured is the whole robot's, as deployed: a gamepad axis published on MQTT -> the
broker service (input into the shared-memory gamepad buffer) -> the executor's wake-up ->
``teleop_main`` -> ``Robot.set_value`` -> the device service's wake-up -> the DeviceWrite bytes
on a serial port, read by a Smart Device on a pseudo-terminal. The three services run as
separate processes (``runtime service broker|executor|device``), as compose runs them. The
figure for one change is the time from the publish to the DeviceWrite carrying its value,
timed in this process with the monotonic clock; changes come every 20-50 ms (a driver's rate).

Where a change starts: the bench publishes on a plain TCP socket speaking MQTT itself
(``RawPublisher``: the PUBLISH packet is built first, the clock read just before ``send``), so
the figure starts when the message leaves the driver station, not when an asyncio MQTT client
was asked to send it. ``--publisher connection`` publishes with Runtime's own MQTT client
(``runtime.remote.Connection``, what the gateway and the web station publish Dawn's and the
browser's input with) and reads the clock when ``publish`` is called: the figures taken before
2026-12-01 were measured that way, when that client still published through aiomqtt's several
loop turns.

The floor, in the same run, from the same raw publisher: publish -> receive by a plain paho
client (its network thread's callback), and by a bare socket (a blocking ``recv``): the MQTT hop
alone, the part of the path no Runtime code can remove.

``--hops`` asks every service to record a timestamp at each hop (``RUNTIME_TRACE``; the
monotonic clock is one clock for every process of the machine) and prints where the time goes.

Anchor: PiE's C runtime on this machine class, gamepad -> test device: median 0.85 ms, max
1.44 ms. Targets (issue 14): Mosquitto median <= 0.6 ms, p99 <= 1.2 ms; embedded median <= 1.2 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import psutil
from hops import breakdown, figures
from runtime.messages import GamepadInput, encode
from runtime.mqtt_server import free_port
from runtime.remote import Client, Connection
from timed import TimedKoala

PROGRAM = '''
def teleop_main():
    Robot.set_value("koala", "duty_cycle_a", Gamepad.get_value("joystick_left_y"))
'''
SERVICES = ("broker", "executor", "device")


def start_broker(kind: str, directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    if kind == "mosquitto":
        config = directory / "mosquitto.conf"
        config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n"
                          "set_tcp_nodelay true\n")
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        argv = [binary, "-c", str(config)]
    else:
        argv = [sys.executable, "-m", "runtime", "mqtt-server", "--listen", f"127.0.0.1:{port}"]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return process, f"mqtt://127.0.0.1:{port}"
        time.sleep(0.05)
    process.kill()
    raise SystemExit(f"the {kind} broker did not start")


def _remaining_length(length: int) -> bytes:
    """MQTT 3.1.1's variable-length integer (section 2.2.3)."""
    out = bytearray()
    while True:
        length, digit = divmod(length, 128)
        out.append(digit | (0x80 if length else 0))
        if not length:
            return bytes(out)


def _string(text: str) -> bytes:
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


def _connect(url: str, client_id: str) -> socket.socket:
    """A plain TCP socket (TCP_NODELAY) with an MQTT 3.1.1 session: CONNECT sent, CONNACK read
    (``SystemExit`` if the broker refuses)."""
    host, port = url.removeprefix("mqtt://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    body = _string("MQTT") + bytes((4, 0x02)) + (600).to_bytes(2, "big") + _string(client_id)
    sock.sendall(bytes((0x10,)) + _remaining_length(len(body)) + body)
    connack = sock.recv(4)
    if len(connack) != 4 or connack[0] != 0x20 or connack[3] != 0:
        raise SystemExit(f"the broker refused the bench's client {client_id}: {connack!r}")
    return sock


class RawPublisher:
    """An MQTT 3.1.1 client on a plain blocking socket that only publishes at QoS 0: the
    timestamp of a sample is taken just before its PUBLISH leaves (``publish`` returns it)."""

    def __init__(self, url: str, client_id: str) -> None:
        self.sock = _connect(url, client_id)

    @staticmethod
    def packet(topic: str, payload: bytes) -> bytes:
        body = _string(topic) + payload
        return bytes((0x30,)) + _remaining_length(len(body)) + body

    def send(self, packet: bytes) -> int:
        """Send a packet built by :meth:`packet`; the monotonic ns just before it left."""
        start = time.monotonic_ns()
        self.sock.sendall(packet)
        return start

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(b"\xe0\x00")  # DISCONNECT
        self.sock.close()


def _raw_subscriber(url: str, topic: str) -> socket.socket:
    """A bare socket subscribed to ``topic`` at QoS 0 (CONNACK and SUBACK read)."""
    sock = _connect(url, "floor-raw")
    body = (1).to_bytes(2, "big") + _string(topic) + b"\x00"
    sock.sendall(bytes((0x82,)) + _remaining_length(len(body)) + body)
    sock.recv(5)
    return sock


def floor(url: str, changes: int) -> dict[str, list[float]]:
    """Raw publish -> a paho client's callback, and -> a bare socket's ``recv`` (QoS 0,
    TCP_NODELAY), in ms; changes 20-50 ms apart, as on the path."""
    topic = f"bench/floor/{uuid.uuid4().hex[:8]}"
    received = threading.Event()
    arrival = [0]

    def on_message(client: Any, userdata: Any, message: Any) -> None:
        arrival[0] = time.monotonic_ns()
        received.set()

    host, port = url.removeprefix("mqtt://").split(":")
    sub = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="floor-sub")
    sub.on_message = on_message
    sub.connect(host, int(port))
    sub.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sub.loop_start()
    sub.subscribe(f"{topic}/paho")
    raw = _raw_subscriber(url, f"{topic}/raw")
    publisher = RawPublisher(url, "floor-pub")
    time.sleep(0.3)
    samples: dict[str, list[float]] = {"paho": [], "raw": []}
    for _ in range(changes):
        received.clear()
        start = publisher.send(publisher.packet(f"{topic}/paho", b"x" * 40))
        if received.wait(5):
            samples["paho"].append((arrival[0] - start) / 1e6)
        time.sleep(random.uniform(0.02, 0.05))
        start = publisher.send(publisher.packet(f"{topic}/raw", b"x" * 40))
        raw.recv(4096)
        samples["raw"].append((time.monotonic_ns() - start) / 1e6)
        time.sleep(random.uniform(0.02, 0.05))
    publisher.close()
    raw.close()
    sub.loop_stop()
    sub.disconnect()
    return samples


async def call_until_up(client: Client, service: str, method: str, *args: Any) -> Any:
    deadline = time.monotonic() + 30
    while True:
        try:
            return await client.call(service, method, *args, timeout=1)
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def path(url: str, directory: Path, changes: int, hops: bool,
               publisher_kind: str = "raw") -> dict[str, Any]:
    robot = f"e2e{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "NO_COLOR": "1"}
    trace_dir = directory / "trace"
    if hops:
        trace_dir.mkdir(exist_ok=True)
        env["RUNTIME_TRACE"] = str(trace_dir)
    link = directory / "ttyKoala0"
    device = TimedKoala()
    ready = asyncio.Event()
    device_task = asyncio.create_task(device.serve_pty(link, ready))
    await ready.wait()
    log = (directory / f"services-{robot}.log").open("w")
    processes = [subprocess.Popen(
        [sys.executable, "-m", "runtime", "service", name, "--mqtt", url, "--robot", robot,
         "--state-dir", str(directory), "--observer", "poll",
         "--serial-glob", str(directory / "ttyKoala*")],
        stdout=log, stderr=log, env=env) for name in SERVICES]
    try:
        async with Connection(url, robot=robot) as connection:
            await connection.wait_connected(10)
            client = Client(connection)
            await call_until_up(client, "broker", "set_alias", "koala", str(device.uid))
            await call_until_up(client, "executor", "upload", PROGRAM)
            deadline = time.monotonic() + 30
            while not any(entry.get("uid") == str(device.uid)
                          for entry in await call_until_up(client, "device", "list")):
                if time.monotonic() > deadline:
                    raise SystemExit("the device service never found the pty device")
                await asyncio.sleep(0.1)
            topic = connection.topics.gamepad(0)
            publisher = RawPublisher(url, f"bench-e2e-{robot}")

            async def send(value: float) -> int:
                """Publish ``value``; the monotonic ns the sample starts at."""
                payload = encode(GamepadInput(buttons=0, axes=[0.0, value, 0.0, 0.0],
                                              ts=time.time()))
                if publisher_kind == "raw":
                    return publisher.send(publisher.packet(topic, payload))
                start = time.monotonic_ns()
                await connection.publish(topic, payload)
                return start

            await send(0.0)
            await client.call("executor", "set_mode", "teleop", timeout=5)
            await asyncio.sleep(0.5)
            idle_from = time.monotonic(), cpu_seconds(processes)
            await asyncio.sleep(2.0)
            busy_from = time.monotonic(), cpu_seconds(processes)
            samples = []
            marks = []
            lost = 0
            last = 0.0
            for _ in range(changes):
                value = last
                while value == last:
                    value = round(random.uniform(-0.95, 0.95), 3)
                last = value
                device.expect(value)
                start = await send(value)
                try:
                    arrival = await device.arrival(2, f"a change to {value}")
                except TimeoutError as lost_change:
                    print(lost_change, file=sys.stderr)
                    lost += 1
                    continue
                samples.append((arrival - start) / 1e6)
                marks.append((start, arrival))
                await asyncio.sleep(random.uniform(0.02, 0.05))
            busy_to = time.monotonic(), cpu_seconds(processes)
            publisher.close()
            await client.call("executor", "set_mode", "idle", timeout=5)
        used = cpu_per_change(idle_from, busy_from, busy_to, len(samples))
        result: dict[str, Any] = {"e2e_ms": samples, "lost": lost, "cpu_us_per_change": used}
        if hops:
            result["hops"] = breakdown(trace_dir, marks, CHAIN, ARRIVAL)
        return result
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        device_task.cancel()
        await asyncio.gather(device_task, return_exceptions=True)


#: The hops of one change, in the order the path passes them (names as in ``trace.hop``).
CHAIN = ("broker: input received", "broker: buffer written", "executor: woken",
         "executor: main entered", "executor: set_value", "device: woken",
         "device: DeviceWrite written")
ARRIVAL = "device read DeviceWrite"


def cpu_seconds(processes: list[subprocess.Popen[bytes]]) -> dict[str, float]:
    """CPU time (user + system) used so far by each service and its child processes."""
    used = {}
    for name, process in zip(SERVICES, processes, strict=True):
        total = 0.0
        with contextlib.suppress(psutil.NoSuchProcess):
            root = psutil.Process(process.pid)
            for member in (root, *root.children(recursive=True)):
                total += _on_cpu(member)
        used[name] = total
    return used


def _on_cpu(process: psutil.Process) -> float:
    """Seconds on a CPU, every thread: ``/proc/PID/schedstat`` counts in ns (``cpu_times``
    only in 10 ms ticks, too coarse for a few hundred microseconds per change)."""
    try:
        with open(f"/proc/{process.pid}/schedstat") as stat:
            return int(stat.read().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            return times.user + times.system
    return 0.0


def cpu_per_change(idle_from: tuple[float, dict[str, float]],
                   busy_from: tuple[float, dict[str, float]],
                   busy_to: tuple[float, dict[str, float]], changes: int) -> dict[str, float]:
    """Microseconds of CPU each service spent per change, its teleop idle rate (measured just
    before) taken out. CPU time hardly depends on how loaded the machine is, so this is the
    figure to compare runs on a busy machine by, where latencies are mostly waiting for a core.
    """
    idle_seconds, busy_seconds = busy_from[0] - idle_from[0], busy_to[0] - busy_from[0]
    spent = {}
    for name in SERVICES:
        idle_rate = (busy_from[1][name] - idle_from[1][name]) / idle_seconds
        busy = busy_to[1][name] - busy_from[1][name] - idle_rate * busy_seconds
        spent[name] = round(busy / max(changes, 1) * 1e6, 1)
    return spent


def report(label: str, stats: dict[str, float]) -> str:
    return (f"{label:34s} median {stats['median']:7.3f}  p90 {stats['p90']:7.3f}  "
            f"p99 {stats['p99']:7.3f}  max {stats['max']:7.3f} ms  ({stats['samples']})")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=500)
    parser.add_argument("--broker", choices=("mosquitto", "embedded", "both"), default="both")
    parser.add_argument("--hops", action="store_true", help="per-hop breakdown (RUNTIME_TRACE)")
    parser.add_argument("--publisher", choices=("raw", "connection"), default="raw",
                        help="how the bench publishes (raw: the clock is read as the PUBLISH "
                        "leaves; connection: as Runtime's MQTT client is asked to send)")
    args = parser.parse_args()
    kinds = ("mosquitto", "embedded") if args.broker == "both" else (args.broker,)
    results: dict[str, Any] = {"benchmark": "e2e", "changes": args.changes}
    for kind in kinds:
        directory = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
        broker, url = start_broker(kind, directory)
        try:
            floor_ms = await asyncio.to_thread(floor, url, min(args.changes, 300))
            measured = await path(url, directory, args.changes, args.hops, args.publisher)
        finally:
            broker.terminate()
            broker.wait(10)
            shutil.rmtree(directory, ignore_errors=True)
        entry: dict[str, Any] = {"floor_ms": figures(floor_ms["paho"]),
                                 "floor_raw_ms": figures(floor_ms["raw"]),
                                 "e2e_ms": figures(measured["e2e_ms"]),
                                 "publisher": args.publisher}
        print(report(f"{kind}: MQTT floor (-> paho)", entry["floor_ms"]))
        print(report(f"{kind}: MQTT floor (-> socket)", entry["floor_raw_ms"]))
        print(report(f"{kind}: gamepad -> DeviceWrite", entry["e2e_ms"]), flush=True)
        entry["cpu_us_per_change"] = measured["cpu_us_per_change"]
        entry["lost"] = measured["lost"]
        print(f"{kind}: CPU per change (us): " + ", ".join(
            f"{name} {used:.0f}" for name, used in measured["cpu_us_per_change"].items())
            + f"; changes that never arrived: {measured['lost']}")
        if "hops" in measured:
            entry["hops"] = measured["hops"]
            print(f"    {'hop':30s} {'since publish: median':>22s} {'step: median':>13s}"
                  f" {'p90':>7s} {'p99':>7s} ms  (changes)")
            for name, stats in measured["hops"].items():
                at, step = stats["at"], stats["step"]
                print(f"    {name:30s} {at['median']:22.3f} {step['median']:13.3f} "
                      f"{step['p90']:7.3f} {step['p99']:7.3f}     ({step['samples']})")
        results[kind] = entry
    print(json.dumps(results))


if __name__ == "__main__":
    asyncio.run(main())
