"""The whole robot: start-up time, idle CPU and memory of ``runtime up`` with 4 devices.

    .venv/bin/python bench/stack.py [--runs 3] [--idle 20] [--quick]

Start-up: from launching ``runtime up --simulate KoalaBear --simulate LimitSwitch
--simulate YogiBear --simulate LineFollower`` to the moment a client sees all three services
online (retained status) and all four ``device/<uid>/info`` published. Idle: CPU of the whole
process tree (supervisor, embedded broker, services, simulated devices) over ``--idle``
seconds in idle mode, as % of one core, and the sum of their RSS. Then, in teleop with a
gamepad publishing at 20 Hz, the time from the last gamepad message to a client seeing the
motor at 0 (input loss; target <= 600 ms).

``--deployed`` measures the idle CPU of the robot as deployed instead (issue 14's "whole-stack
idle CPU with 4 devices <= 5% of a core"): Mosquitto and the four services, each its own process
(``runtime service ...``, as compose runs them), the same 4 devices as separate
``runtime virtual-device --pty`` processes found on their pseudo-terminals (the poll observer:
a robot's udev costs nothing between plugs). The devices stand in for hardware: their CPU is
printed apart and not counted. Each process's share is printed, so a regression names itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
from e2e import start_broker
from runtime.messages import DeviceData, DeviceInfo, GamepadInput, ServiceStatus, decode, encode
from runtime.mqtt_server import free_port
from runtime.remote import Client, Connection

DEVICES = ("KoalaBear:42", "LimitSwitch", "YogiBear", "LineFollower")
KOALA = str((13 << 72) | (1 << 64) | 42)


def launch(robot: str, port: int, state: str) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "runtime", "up", "--robot", robot, "--state-dir", state,
            "--listen", f"127.0.0.1:{port}"]
    for spec in DEVICES:
        argv += ["--simulate", spec]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "NO_COLOR": "1"})


async def watch_ready(url: str, robot: str, started: float) -> float:
    """Seconds from ``started`` until 3 services are online and 4 devices published."""
    online: set[str] = set()
    devices: set[str] = set()
    ready = asyncio.Event()

    def on_status(topic: str, payload: bytes) -> None:
        if payload and decode(ServiceStatus, payload).state == "online":
            online.add(topic.split("/")[-2])
        if len(online) >= 3 and len(devices) >= len(DEVICES):
            ready.set()

    def on_info(topic: str, payload: bytes) -> None:
        if payload:
            decode(DeviceInfo, payload)
            devices.add(topic.split("/")[-2])
        on_status(topic, b"")

    connection = Connection(url, robot=robot, connect_timeout=0)
    await connection.start()
    await connection.subscribe(connection.topics.any_status, on_status)
    await connection.subscribe(connection.topics.any_device_info, on_info)
    await asyncio.wait_for(ready.wait(), 60)
    elapsed = time.monotonic() - started
    await connection.close()
    return elapsed


def tree(process: subprocess.Popen[bytes]) -> list[psutil.Process]:
    root = psutil.Process(process.pid)
    return [root, *root.children(recursive=True)]


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


async def input_loss(url: str, robot: str) -> float:
    """Teleop with the sample program; stop the gamepad; seconds until the motor reads 0."""
    async with Connection(url, robot=robot) as connection:
        zero_seen = asyncio.Event()
        driving = True
        stopped_at = 0.0
        seen_at = 0.0

        def on_data(topic: str, payload: bytes) -> None:
            nonlocal seen_at
            value = decode(DeviceData, payload).params.get("duty_cycle_a")
            if not driving and value == 0.0 and not zero_seen.is_set():
                seen_at = time.monotonic()
                zero_seen.set()

        await connection.subscribe(connection.topics.device_data(KOALA), on_data)
        await Client(connection).call("executor", "set_mode", "teleop")
        for _ in range(30):
            pad = GamepadInput(buttons=0, axes=[0.0, 1.0, 0.0, 0.0], ts=time.time())
            await connection.publish(connection.topics.gamepad(0), encode(pad))
            await asyncio.sleep(0.05)
        driving = False
        stopped_at = time.monotonic()
        await asyncio.wait_for(zero_seen.wait(), 10)
        await Client(connection).call("executor", "set_mode", "idle")
        return seen_at - stopped_at


async def one_run(idle: float) -> dict[str, float]:
    robot = f"bench{uuid.uuid4().hex[:6]}"
    port = free_port()
    url = f"mqtt://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as state:
        started = time.monotonic()
        process = launch(robot, port, state)
        try:
            startup = await watch_ready(url, robot, started)
            await asyncio.sleep(1.0)  # let start-up work finish
            processes = tree(process)
            before = cpu_seconds(processes)
            await asyncio.sleep(idle)
            cpu = (cpu_seconds(processes) - before) / idle * 100
            rss = sum(p.memory_info().rss for p in processes if p.is_running()) / 2**20
            loss = await input_loss(url, robot)
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(30)
    return {"startup_s": startup, "idle_cpu_percent": cpu, "rss_mb": rss,
            "processes": len(processes), "input_loss_to_zero_s": loss}


SERVICES = ("broker", "device", "executor", "gateway")
DEVICE_TYPES = ("KoalaBear", "LimitSwitch", "YogiBear", "LineFollower")


async def deployed_run(idle: float) -> dict[str, Any]:
    """Idle CPU (% of one core) of Mosquitto + the 4 services, devices on ptys not counted."""
    robot = f"bench{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory() as state:
        directory = Path(state)
        broker, url = start_broker("mosquitto", directory)
        env = {**os.environ, "NO_COLOR": "1"}
        devices = [subprocess.Popen(
            [sys.executable, "-m", "runtime", "virtual-device", kind, "--uid", str(index + 1),
             "--pty", str(directory / f"ttyBench{index}")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
            for index, kind in enumerate(DEVICE_TYPES)]
        services = {name: subprocess.Popen(
            [sys.executable, "-m", "runtime", "service", name, "--mqtt", url, "--robot", robot,
             "--state-dir", state, "--observer", "poll",
             "--serial-glob", str(directory / "ttyBench*")]
            + (["--listen", f"127.0.0.1:{free_port()}"] if name == "gateway" else []),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env) for name in SERVICES}
        try:
            await watch_ready(url, robot, time.monotonic())
            await asyncio.sleep(2.0)  # let start-up work finish
            groups = {"mosquitto": [psutil.Process(broker.pid)]}
            groups.update({name: tree(process) for name, process in services.items()})
            groups["devices (not counted)"] = [psutil.Process(d.pid) for d in devices]
            before = {name: cpu_seconds(processes) for name, processes in groups.items()}
            await asyncio.sleep(idle)
            shares = {name: (cpu_seconds(processes) - before[name]) / idle * 100
                      for name, processes in groups.items()}
        finally:
            for process in [*services.values(), *devices, broker]:
                process.terminate()
            for process in [*services.values(), *devices, broker]:
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
    counted = sum(share for name, share in shares.items() if "not counted" not in name)
    return {"idle_cpu_percent": counted, "per_process": shares}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--idle", type=float, default=20.0)
    parser.add_argument("--quick", action="store_true", help="1 run, 5 s idle")
    parser.add_argument("--deployed", action="store_true",
                        help="idle CPU of Mosquitto + the 4 services (devices not counted)")
    args = parser.parse_args()
    runs, idle = (1, 5.0) if args.quick else (args.runs, args.idle)
    if args.deployed:
        deployed = []
        for index in range(runs):
            result = await deployed_run(idle)
            deployed.append(result)
            print(f"run {index + 1}: deployed idle CPU {result['idle_cpu_percent']:.1f}% of a "
                  "core (" + ", ".join(f"{name} {share:.1f}%" for name, share
                                        in result["per_process"].items()) + ")", flush=True)
        print(json.dumps({"benchmark": "stack-deployed", "runs": runs, "idle_seconds": idle,
                          "median_idle_cpu_percent": statistics.median(
                              r["idle_cpu_percent"] for r in deployed), "all": deployed}))
        return
    results = []
    for index in range(runs):
        result = await one_run(idle)
        results.append(result)
        print(f"run {index + 1}: ready in {result['startup_s']:.2f} s, idle CPU "
              f"{result['idle_cpu_percent']:.1f}% of a core, RSS {result['rss_mb']:.0f} MB in "
              f"{result['processes']} processes, input loss -> motor 0 seen after "
              f"{result['input_loss_to_zero_s'] * 1000:.0f} ms", flush=True)
    summary = {key: statistics.median(r[key] for r in results) for key in results[0]}
    print(json.dumps({"benchmark": "stack", "runs": runs, "idle_seconds": idle,
                      "median": summary, "all": results}))


if __name__ == "__main__":
    logging.getLogger("runtime.remote").setLevel(logging.ERROR)  # "not up yet" while it starts
    asyncio.run(main())
