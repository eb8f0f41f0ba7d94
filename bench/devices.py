"""Device service under load: N virtual devices streaming every 10 ms into one device service.

    .venv/bin/python bench/devices.py [--devices 8,32,64] [--lowcar 8,32] [--seconds 30] [--quick]

The device service runs as in production (``runtime service device`` in its own process, against
Mosquitto on a free loopback port); the virtual devices run in this process (not counted).
Per N: device-service CPU (% of one core, from /proc via psutil), DeviceData frames
sent by the devices vs. updates that reached the buffers (lost = difference), and value age in
the buffers (now - timestamp of the latest value, sampled). Then the latency from
``DeviceBuffer.set()`` to the DeviceWrite arriving at the device.

Lowcar, in the same run: N virtual lowcar KoalaBears streaming all 16 params every 5 ms (about
what a 115200-baud link carries: 16 x 5 + 12 bytes of framing = 79 bytes per frame), same
figures. Both generations' devices pause before the counts are compared (then what is in flight
lands), so a frame on its way is not counted as "lost".
Then the time from a new connection to the device's buffer (identification included) for each
generation: the "< 2 s" of issue 18.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil
from runtime.buffer import BufferStore
from runtime.mqtt_server import free_port
from runtime.protocol.lowcar import LowcarMessage
from runtime.remote import Client, Connection
from runtime.virtual import VirtualDevice
from runtime.virtual_lowcar import VirtualLowcarDevice
from stats import percentile
from timed import TimedKoala, until

INTERVAL = 0.01
LOWCAR_PERIOD = 0.005


def start_mosquitto(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    config = directory / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n")
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    process = subprocess.Popen([binary, "-c", str(config)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    return process, f"mqtt://127.0.0.1:{port}"


async def load(url: str, robot: str, address: str, count: int, seconds: float,
               service: psutil.Process) -> dict[str, float]:
    devices = [PausableKoala("KoalaBear") for _ in range(count)]  # counts data_sent
    tasks = [asyncio.create_task(device.connect(address)) for device in devices]
    uids = [str(device.uid) for device in devices]
    async with Connection(url, robot=robot) as connection:
        client = Client(connection)
        store = BufferStore(robot)
        deadline = time.monotonic() + 30
        while set(uids) - set(store.device_uids()):
            if time.monotonic() > deadline:
                raise SystemExit("devices were not all discovered within 30 s")
            await asyncio.sleep(0.05)
        for uid in uids:
            await client.call("device", "subscribe", uid, ["enc_a", "enc_b"], INTERVAL)
        buffers = [store.open_device(uid) for uid in uids]
        await asyncio.sleep(0.5)  # settle
        counts = [buffer.update_count for buffer in buffers]
        sent_before = sum(device.data_sent for device in devices)
        cpu_before = service.cpu_times()
        started = time.monotonic()
        ages: list[float] = []
        while time.monotonic() - started < seconds:
            now = time.time()
            ages.extend(now - buffer.timestamp("enc_a") for buffer in buffers)
            await asyncio.sleep(0.05)
        cpu_after = service.cpu_times()
        elapsed = time.monotonic() - started
        for device in devices:
            device.paused = True
        sent_after = sum(device.data_sent for device in devices)
        await asyncio.sleep(0.5)  # what is in flight arrives
        received = sum(b.update_count - c for b, c in zip(buffers, counts, strict=True))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        store.close()
    cpu = (cpu_after.user + cpu_after.system - cpu_before.user - cpu_before.system) / elapsed
    sent = sent_after - sent_before
    return {
        "devices": count,
        "cpu_percent_of_one_core": round(cpu * 100, 1),
        "frames_per_second": round(sent / elapsed),
        "frames_sent_by_devices": sent,
        "updates_in_buffers": received,
        "lost": max(0, sent - received),
        "value_age_ms_median": round(statistics.median(ages) * 1000, 2),
        "value_age_ms_p99": round(percentile(ages, 0.99) * 1000, 2),
    }


class PausableKoala(VirtualDevice):
    """A virtual Hibike KoalaBear (it counts its DeviceData in ``data_sent``) that can pause
    its stream, so the counts are compared once nothing is in flight."""

    paused = False

    def _send_data(self, bitmap: int) -> None:
        if not self.paused:
            super()._send_data(bitmap)


class CountingLowcarDevice(VirtualLowcarDevice):
    """A virtual lowcar KoalaBear that counts its DEVICE_DATA frames and can pause them."""

    data_sent = 0
    paused = False

    def _send(self, frame: bytes) -> None:
        if frame[3] == LowcarMessage.DEVICE_DATA:  # 00 | L | COBS code | message id ...
            if self.paused:
                return
            self.data_sent += 1
        super()._send(frame)


async def load_lowcar(robot: str, address: str, count: int, seconds: float,
                      service: psutil.Process) -> dict[str, float]:
    devices = [CountingLowcarDevice("KoalaBear", data_period=LOWCAR_PERIOD)
               for _ in range(count)]
    tasks = [asyncio.create_task(device.connect(address)) for device in devices]
    uids = [str(device.uid) for device in devices]
    store = BufferStore(robot)
    deadline = time.monotonic() + 30
    while set(uids) - set(store.device_uids()):
        if time.monotonic() > deadline:
            raise SystemExit("lowcar devices were not all discovered within 30 s")
        await asyncio.sleep(0.05)
    buffers = [store.open_device(uid) for uid in uids]
    await asyncio.sleep(0.5)  # settle
    counts = [buffer.update_count for buffer in buffers]
    sent_before = sum(device.data_sent for device in devices)
    cpu_before = service.cpu_times()
    started = time.monotonic()
    ages: list[float] = []
    while time.monotonic() - started < seconds:
        now = time.time()
        ages.extend(now - buffer.timestamp("enc_a") for buffer in buffers)
        await asyncio.sleep(0.05)
    cpu_after = service.cpu_times()
    elapsed = time.monotonic() - started
    for device in devices:
        device.paused = True
    sent = sum(device.data_sent for device in devices) - sent_before
    await asyncio.sleep(0.5)  # what is in flight arrives
    received = sum(b.update_count - c for b, c in zip(buffers, counts, strict=True))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    store.close()
    cpu = (cpu_after.user + cpu_after.system - cpu_before.user - cpu_before.system) / elapsed
    return {
        "devices": count,
        "cpu_percent_of_one_core": round(cpu * 100, 1),
        "frames_per_second": round(sent / elapsed),
        "frames_sent_by_devices": sent,
        "updates_in_buffers": received,
        "lost": max(0, sent - received),
        "value_age_ms_median": round(statistics.median(ages) * 1000, 2),
        "value_age_ms_p99": round(percentile(ages, 0.99) * 1000, 2),
    }


async def discovery(robot: str, address: str, generation: str, rounds: int) -> dict[str, float]:
    """Seconds from a new connection to the device's buffer (identification included)."""
    samples = []
    store = BufferStore(robot)
    for _ in range(rounds):
        device = (VirtualLowcarDevice("KoalaBear") if generation == "lowcar"
                  else VirtualDevice("KoalaBear"))
        start = time.perf_counter()
        task = asyncio.create_task(device.connect(address))
        await _buffer(store, device.uid, True, f"the {generation} device in the buffers",
                      interval=0.001)
        samples.append(time.perf_counter() - start)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await _buffer(store, device.uid, False, f"the {generation} device's buffer to go",
                      interval=0.01)
    store.close()
    return {"median_s": round(statistics.median(samples), 4),
            "p99_s": round(percentile(samples, 0.99), 4),
            "max_s": round(max(samples), 4), "samples": len(samples)}


def _print_load(label: str, count: int, result: dict[str, float]) -> None:
    print(f"{label} {count:3d} devices: device service {result['cpu_percent_of_one_core']:5.1f}% "
          f"of a core, {result['frames_per_second']} frames/s, lost "
          f"{result['lost']}, value age median {result['value_age_ms_median']} ms "
          f"p99 {result['value_age_ms_p99']} ms", flush=True)


async def _buffer(store: BufferStore, uid: int, present: bool, what: str,
                  interval: float) -> None:
    """Until the device buffer of ``uid`` is there (``present``) or gone (within 30 s)."""
    await until(lambda: (str(uid) in store.device_uids()) == present, 30, what,
                interval=interval)


async def _no_device_buffers(robot: str) -> None:
    await until(lambda: not any(os.path.basename(name).startswith(f"runtime.{robot}@device")
                                for name in os.listdir("/dev/shm")),
                30, "the device buffers of the last round to go")


async def write_latency(robot: str, address: str, rounds: int) -> dict[str, float]:
    device = TimedKoala()
    task = asyncio.create_task(device.connect(address))
    store = BufferStore(robot)
    await until(lambda: str(device.uid) in store.device_uids(), 30,
                "the timed device in the buffers", interval=0.02)
    await asyncio.sleep(0.2)
    buffer = store.open_device(device.uid)
    samples = []
    for index in range(rounds):
        device.expect_any()
        start = time.monotonic_ns()
        buffer.set("pid_kp_a", float(index % 50))
        arrival = await device.arrival(5, f"buffer.set(pid_kp_a) number {index + 1}")
        samples.append((arrival - start) / 1e6)
        await asyncio.sleep(0.002)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    store.close()
    return {"median_ms": round(statistics.median(samples), 3),
            "p99_ms": round(percentile(samples, 0.99), 3), "samples": len(samples)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", default="8,32,64")
    parser.add_argument("--lowcar", default="8,32",
                        help="lowcar KoalaBear counts (all 16 params every 5 ms); '' for none")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--quick", action="store_true", help="8 and 32 devices, 5 s each")
    args = parser.parse_args()
    counts = [int(n) for n in args.devices.split(",") if n and int(n) > 0]
    lowcar_counts = [int(n) for n in args.lowcar.split(",") if n and int(n) > 0]
    seconds = args.seconds
    if args.quick:
        counts, lowcar_counts, seconds = [8, 32], [8, 32], 5.0
    directory = Path(tempfile.mkdtemp(prefix="bench-devices-"))
    mosquitto, url = start_mosquitto(directory)
    robot = f"bench{uuid.uuid4().hex[:6]}"
    address = f"unix:{directory / 'vsd.sock'}"
    service = subprocess.Popen(
        [sys.executable, "-m", "runtime", "service", "device", "--mqtt", url, "--robot", robot,
         "--state-dir", str(directory), "--observer", "poll", "--serial-glob",
         str(directory / "none*"), "--virtual-listen", address],
        stdout=subprocess.DEVNULL, stderr=(directory / "device.log").open("w"))
    try:
        while not (directory / "vsd.sock").exists():
            if service.poll() is not None:
                raise SystemExit("the device service exited:\n"
                                 + (directory / "device.log").read_text())
            await asyncio.sleep(0.05)
        results = []
        for count in counts:
            result = await load(url, robot, address, count, seconds, psutil.Process(service.pid))
            results.append(result)
            _print_load("hibike", count, result)
            await _no_device_buffers(robot)
        lowcar_results = []
        for count in lowcar_counts:
            result = await load_lowcar(robot, address, count, seconds,
                                       psutil.Process(service.pid))
            lowcar_results.append(result)
            _print_load("lowcar", count, result)
            await _no_device_buffers(robot)
        discoveries = {}
        for generation in ("hibike", "lowcar"):
            discoveries[generation] = found = await discovery(robot, address, generation,
                                                              10 if args.quick else 30)
            print(f"{generation} discovery (connect -> buffer): median {found['median_s']} s, "
                  f"p99 {found['p99_s']} s, max {found['max_s']} s", flush=True)
        latency = await write_latency(robot, address, 200 if args.quick else 1000)
        print(f"set() -> DeviceWrite at the device: median {latency['median_ms']} ms, "
              f"p99 {latency['p99_ms']} ms")
        print(json.dumps({"benchmark": "devices", "seconds": seconds, "load": results,
                          "lowcar_load": lowcar_results, "discovery": discoveries,
                          "write_latency": latency}))
    finally:
        service.terminate()
        service.wait(10)
        mosquitto.terminate()
        mosquitto.wait(10)
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
