"""Stops with the student process model: set_mode -> Disable at a device, whatever the code does.

    .venv/bin/python bench/stop.py [--stops 200] [--quick] [--hops]

Everything runs as in production, on loopback: Mosquitto, ``runtime service device`` with a
virtual KoalaBear connected over its virtual-device socket (this process decodes its frames),
and ``runtime service executor``. The student program (auto mode: no driver-input rule) sets
``duty_cycle_a`` to 0.5 in ``autonomous_setup`` and then, per scenario, stays in a busy loop
(``while True: pass``), in one long C call (``sum(range(10**13))``), or is frozen (SIGSTOP of
the student process by this bench). Figures:

- ``stop_ms``: the ``set_mode("idle")`` request published -> the Disable packet decoded by the
  device (target p99 <= 5 ms on an idle machine), per scenario, over ``--stops`` stops;
- ``setup_ms``: the ``set_mode("auto")`` request published -> the first line of
  ``autonomous_setup`` running in a fresh student process, from idle with the previous run's
  process gone (target p99 <= 50 ms; right after stopping a stuck process a start also waits
  for that process's end, at most the grace period);
- ``frozen_executor_ms``: SIGSTOP of the executor's control process -> Disable at the device
  (target p99 <= 300 ms; needs the device service's executor-liveness watchdog: counted as
  missing when no Disable comes within 2 s).

``--hops`` has the services record each hop of a stop (``RUNTIME_TRACE``, ``bench/hops.py``):
the request at the control process, the mode stated in shared memory, the device service rung,
the Disable written; printed as ms from the request, per scenario.

Prints one text line per figure, then a JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from devices import start_mosquitto
from hops import breakdown
from runtime.aliases import set_alias
from runtime.eventloop import run
from runtime.messages import LogRecord, decode
from runtime.protocol import MessageType
from runtime.remote import Client, Connection
from runtime.virtual import VirtualDevice
from stats import summary

SCENARIOS = {
    "busy loop": "while True:\n        pass",
    "long C call": "sum(range(10**13))",
    "frozen": "while True:\n        Robot.sleep(0.01)",
}

PROGRAM = """\
import os, time

def autonomous_setup():
    print("setup", repr(time.time()), os.getpid(), flush=True)
    Robot.set_value("koala", "duty_cycle_a", 0.5)
    {body}
"""


class WatchedDevice(VirtualDevice):
    """A virtual KoalaBear that timestamps the Disable packets it decodes and its writes."""

    def __init__(self) -> None:
        super().__init__("KoalaBear")
        self.disabled_at: float | None = None
        self.disabled_ns = 0
        self.disable_seen = asyncio.Event()
        self.driving = asyncio.Event()

    def _handle(self, packet: Any) -> None:
        if packet.type == MessageType.DISABLE:
            self.disabled_at = time.perf_counter()
            self.disabled_ns = time.monotonic_ns()
            self.disable_seen.set()
        super()._handle(packet)
        if self.values.get("duty_cycle_a") == 0.5:
            self.driving.set()


#: The hops of one stop, in order (names as in ``runtime.trace.hop``).
CHAIN = ("executor: mode change asked", "executor: mode stated", "device: stated mode rang",
         "device: Disable written")
ARRIVAL = "device decoded Disable"


class Stack:
    """Mosquitto, the device and executor services, a client and the watched device."""

    def __init__(self, directory: Path, trace: Path | None = None) -> None:
        self.directory = directory
        self.trace = trace
        self.marks: list[tuple[int, int]] = []  #: (request, Disable decoded), monotonic ns
        self.robot = f"bench{uuid.uuid4().hex[:6]}"
        self.address = f"unix:{directory / 'vsd.sock'}"
        self.processes: list[subprocess.Popen[bytes]] = []
        self.setups: list[tuple[float, int]] = []  # (wall time of setup, student pid)

    def service(self, name: str, *extra: str) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        if self.trace is not None:
            env["RUNTIME_TRACE"] = str(self.trace)
        process = subprocess.Popen(
            [sys.executable, "-m", "runtime", "service", name, "--mqtt", self.url, "--robot",
             self.robot, "--state-dir", str(self.directory), *extra], env=env,
            stdout=subprocess.DEVNULL, stderr=(self.directory / f"{name}.log").open("w"))
        self.processes.append(process)
        return process

    async def start(self) -> None:
        mosquitto, self.url = start_mosquitto(self.directory)
        self.processes.append(mosquitto)
        (self.directory / "options.json").write_text(json.dumps({"setup_timeout": 60.0}))
        self.device_service = self.service(
            "device", "--observer", "poll", "--serial-glob", str(self.directory / "none*"),
            "--virtual-listen", self.address)
        self.executor = self.service("executor")
        while not (self.directory / "vsd.sock").exists():
            await asyncio.sleep(0.05)
        self.device = WatchedDevice()
        set_alias(self.directory, "koala", str(self.device.uid))
        self.device_task = asyncio.create_task(self.device.connect(self.address))
        self.connection = Connection(self.url, robot=self.robot)
        await self.connection.start()
        await self.connection.subscribe(self.connection.topics.log("student"), self._on_log)
        self.client = Client(self.connection)
        for _ in range(300):  # the executor answers once it serves
            try:
                await self.client.call("executor", "get_mode", timeout=0.5)
                break
            except Exception:
                await asyncio.sleep(0.1)

    def _on_log(self, topic: str, payload: bytes) -> None:
        record = decode(LogRecord, payload)
        found = re.match(r"setup (\S+) (\d+)", record.message)
        if found:
            self.setups.append((float(found.group(1)), int(found.group(2))))

    async def program(self, body: str) -> None:
        await self.client.call("executor", "upload", PROGRAM.format(body=body))

    async def drive(self) -> tuple[float, int]:
        """Start auto; (ms from the request to the first line of setup, student pid)."""
        seen = len(self.setups)
        self.device.driving.clear()
        requested = time.time()
        await self.client.call("executor", "set_mode", "auto")
        while len(self.setups) <= seen:
            await asyncio.sleep(0.001)
        await asyncio.wait_for(self.device.driving.wait(), 5)
        setup_at, pid = self.setups[seen]
        return (setup_at - requested) * 1000, pid

    async def stop(self) -> float:
        """ms from the idle request to the Disable at the device."""
        self.device.disable_seen.clear()
        start, start_ns = time.perf_counter(), time.monotonic_ns()
        await self.client.call("executor", "set_mode", "idle")
        await asyncio.wait_for(self.device.disable_seen.wait(), 5)
        assert self.device.disabled_at is not None
        self.marks.append((start_ns, self.device.disabled_ns))
        return (self.device.disabled_at - start) * 1000

    async def close(self) -> None:
        self.device_task.cancel()
        await self.connection.close()
        for process in reversed(self.processes):
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


async def frozen_executor(stack: Stack, rounds: int) -> tuple[list[float], int]:
    """SIGSTOP the executor's control process while a motor runs: ms to the Disable."""
    samples, missing = [], 0
    await stack.program("while True:\n        Robot.sleep(0.01)")
    for _ in range(rounds):
        await stack.drive()
        stack.device.disable_seen.clear()
        start = time.perf_counter()
        stack.executor.send_signal(signal.SIGSTOP)
        try:
            await asyncio.wait_for(stack.device.disable_seen.wait(), 2)
            assert stack.device.disabled_at is not None
            samples.append((stack.device.disabled_at - start) * 1000)
        except TimeoutError:
            missing += 1
        finally:
            stack.executor.send_signal(signal.SIGCONT)
        await stack.stop()
    return samples, missing


def line(name: str, figures: dict[str, float]) -> str:
    return (f"{name}: median {figures['median']:.2f} ms, p99 {figures['p99']:.2f} ms, max "
            f"{figures['max']:.2f} ms ({figures['samples']} samples)")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stops", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="30 stops per scenario")
    parser.add_argument("--hops", action="store_true", help="per-hop breakdown (RUNTIME_TRACE)")
    args = parser.parse_args()
    stops = 30 if args.quick else args.stops
    directory = Path(tempfile.mkdtemp(prefix="bench-stop-"))
    trace = directory / "trace" if args.hops else None
    if trace is not None:
        trace.mkdir()
    stack = Stack(directory, trace)
    results: dict[str, Any] = {"benchmark": "stop", "stops": stops,
                               "load_average": os.getloadavg()[0]}
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    try:
        await stack.start()
        setups: list[float] = []
        for name, body in SCENARIOS.items():
            await stack.program(body)
            samples = []
            stack.marks.clear()
            for _ in range(stops):
                setup_ms, pid = await stack.drive()
                setups.append(setup_ms)
                if name == "frozen":
                    os.kill(pid, signal.SIGSTOP)
                samples.append(await stack.stop())
                while Path(f"/proc/{pid}").exists():  # the next start measures from idle
                    await asyncio.sleep(0.005)
            results[f"stop_ms {name}"] = summary(samples)
            print(line(f"set_mode idle -> Disable at the device, student {name}",
                       results[f"stop_ms {name}"]), flush=True)
            if trace is not None:
                hops = breakdown(trace, stack.marks, CHAIN, ARRIVAL)
                results[f"hops {name}"] = hops
                for hop_name, stats in hops.items():
                    print(f"    {hop_name:32s} at median {stats['at']['median']:6.3f}  p99 "
                          f"{stats['at']['p99']:6.3f}  step median {stats['step']['median']:6.3f}"
                          f"  p99 {stats['step']['p99']:6.3f} ms", flush=True)
        results["setup_ms"] = summary(setups)
        print(line("set_mode auto -> first line of autonomous_setup (fresh process)",
                   results["setup_ms"]), flush=True)
        frozen, missing = await frozen_executor(stack, 10 if args.quick else 50)
        results["frozen_executor_ms"] = summary(frozen) if frozen else None
        results["frozen_executor_missing"] = missing
        if frozen:
            print(line("executor control frozen -> Disable at the device",
                       results["frozen_executor_ms"]), flush=True)
        if missing:
            print(f"executor control frozen: no Disable within 2 s in {missing} of "
                  f"{missing + len(frozen)} rounds", flush=True)
        print(json.dumps(results))
    finally:
        await stack.close()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    run(main())  # uvloop, as the services: the bench's device is a harness, not under test
