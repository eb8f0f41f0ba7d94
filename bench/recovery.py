"""A stalled device comes back: SIGCONT of a paused virtual device -> its info announced again.

    .venv/bin/python bench/recovery.py [--rounds 10]

Real processes: Mosquitto, ``runtime service device`` and ``runtime virtual-device`` (one over
the socket, one on a pseudo-terminal opened as a serial port). One sample: the device is
SIGSTOPped until the service has dropped it (its info cleared), then SIGCONT; the figure is
SIGCONT -> its retained info published again (issue 11: within 2 s). Prints median/p99/max in ms
per link kind, and JSON.
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
from runtime.remote import Connection
from stats import summary

RUNTIME = [sys.executable, "-m", "runtime"]


#: waits polled every 2 ms (figures come from stamps taken where events arrive: a poll only
#: ends a wait)
until = functools.partial(timed.until, timeout=30.0, interval=0.002)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="rt-bench-"))
    mosquitto, url = start_mosquitto(directory)
    robot = f"bench{uuid.uuid4().hex[:6]}"
    address = f"unix:{directory / 'vsd.sock'}"
    service = subprocess.Popen(
        [*RUNTIME, "service", "device", "--mqtt", url, "--robot", robot, "--observer", "poll",
         "--serial-glob", str(directory / "ttyB*"), "--virtual-listen", address,
         "--state-dir", str(directory)],
        stdout=subprocess.DEVNULL, stderr=(directory / "device.log").open("w"))
    devices: dict[str, tuple[int, subprocess.Popen[bytes]]] = {}
    announced: dict[str, tuple[bool, float]] = {}
    try:
        await until(lambda: (directory / "vsd.sock").exists(), what="the device service")
        for kind, uid, where in (("socket", protocol.make_uid(13, 1, 1), ["--connect", address]),
                                 ("pty", protocol.make_uid(0, 1, 2),
                                  ["--pty", str(directory / "ttyB0")])):
            process = subprocess.Popen([*RUNTIME, "virtual-device", str(uid >> 72), "--uid",
                                        str(uid), *where], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
            devices[kind] = (uid, process)

        def on_info(topic: str, payload: bytes) -> None:
            announced[topic.split("/")[-2]] = (bool(payload), time.perf_counter())

        results = {}
        async with Connection(url, robot=robot) as connection:
            await connection.subscribe(connection.topics.any_device_info, on_info, qos=1)
            for kind, (uid, process) in devices.items():
                key = str(uid)
                await until(lambda key=key: announced.get(key, (False, 0))[0],
                            what=f"{kind} online")
                samples = []
                for _ in range(args.rounds):
                    os.kill(process.pid, signal.SIGSTOP)
                    await until(lambda key=key: not announced[key][0], what=f"{kind} dropped")
                    resumed = time.perf_counter()
                    os.kill(process.pid, signal.SIGCONT)
                    await until(lambda key=key: announced[key][0], what=f"{kind} back")
                    samples.append((announced[key][1] - resumed) * 1000)
                results[kind] = summary(samples)
                figures = results[kind]
                print(f"{kind}: SIGCONT -> info again: median {figures['median']:.1f} ms, "
                      f"p99 {figures['p99']:.1f} ms, max {figures['max']:.1f} ms "
                      f"over {figures['samples']}", flush=True)
        print(json.dumps({"benchmark": "recovery", "resume_to_announced_ms": results}))
    finally:
        for _, process in devices.values():
            process.send_signal(signal.SIGCONT)
            process.terminate()
            process.wait(10)
        for process in (service, mosquitto):
            process.terminate()
            process.wait(10)
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
