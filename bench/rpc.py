"""RPC round trip over MQTT: client process -> broker process -> service process -> back.

The deployment's shape: the broker (embedded amqtt, or a Mosquitto this script starts on a free
loopback port), a service serving ``bench.echo`` in its own process, and the calling client
here. Calls are sequential (one in flight), so each sample is one full round trip: request
QoS 1 to the broker, to the service, reply QoS 1 back.

    .venv/bin/python bench/rpc.py [--calls 2000] [--json FILE] [--brokers amqtt,mosquitto]
                                  [--compare-nodelay]

``--compare-nodelay`` adds a run against amqtt without TCP_NODELAY on the broker's sockets
(clients keep it), to show what Nagle's algorithm costs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from runtime.mqtt_server import EmbeddedBroker, free_port
from runtime.remote import Client, Connection, Handler, rpc

ROBOT = "bench"


class Echo(Handler):
    @rpc
    async def echo(self, value: object) -> object:
        return value


async def serve(url: str) -> None:
    """Service role: answer ``bench.echo`` until killed."""
    async with Connection(url, robot=ROBOT, service="bench") as connection:
        await connection.wait_connected(30)
        await Echo().serve(connection)
        print("ready", flush=True)
        await asyncio.Event().wait()


async def run_amqtt(port: int, nodelay: bool) -> None:
    """Broker role: embedded amqtt until killed."""
    async with EmbeddedBroker("127.0.0.1", port, nodelay=nodelay):
        print("ready", flush=True)
        await asyncio.Event().wait()


def spawn(*args: str) -> subprocess.Popen[str]:
    """This script in another role; returns once it printed ``ready``."""
    process = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE,
                               text=True)
    assert process.stdout is not None
    if process.stdout.readline().strip() != "ready":
        process.kill()
        raise SystemExit(f"bench helper {args} did not start")
    return process


def start_mosquitto(port: int, workdir: Path) -> subprocess.Popen[str]:
    config = workdir / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n"
                      "set_tcp_nodelay true\npersistence false\n")
    process = subprocess.Popen(["/usr/sbin/mosquitto", "-c", str(config)],
                               stderr=subprocess.DEVNULL, text=True)
    return process


async def measure(url: str, calls: int, warmup: int) -> list[float]:
    """Seconds per sequential call, after ``warmup`` unmeasured calls."""
    async with Connection(url, robot=ROBOT, connect_timeout=0) as connection:
        await connection.wait_connected(30)
        client = Client(connection)
        payload = {"speed": 0.5, "values": [1, 2, 3]}
        for _ in range(warmup):
            await client.call("bench", "echo", payload, timeout=10)
        samples = []
        for _ in range(calls):
            start = time.perf_counter()
            await client.call("bench", "echo", payload, timeout=10)
            samples.append(time.perf_counter() - start)
        return samples


def summary(name: str, samples: list[float]) -> dict[str, float | int | str]:
    ordered = sorted(samples)
    return {
        "broker": name,
        "calls": len(samples),
        "median_ms": round(statistics.median(ordered) * 1e3, 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e3, 3),
        "mean_ms": round(statistics.fmean(ordered) * 1e3, 3),
        "calls_per_s": round(len(samples) / sum(samples), 1),
    }


def bench_broker(name: str, calls: int, warmup: int) -> dict[str, float | int | str]:
    port = free_port()
    url = f"mqtt://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as workdir:
        if name == "mosquitto":
            broker = start_mosquitto(port, Path(workdir))
        else:
            broker = spawn("--role", "amqtt", str(port), str(name != "amqtt-no-nodelay"))
        try:
            service = spawn("--role", "service", url)
            try:
                samples = asyncio.run(measure(url, calls, warmup))
            finally:
                service.kill()
                service.wait()
        finally:
            broker.kill()
            broker.wait()
    return summary(name, samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--brokers", default="amqtt,mosquitto")
    parser.add_argument("--compare-nodelay", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--role", nargs="+", help=argparse.SUPPRESS)
    options = parser.parse_args()

    if options.role:
        role, *args = options.role
        if role == "service":
            asyncio.run(serve(args[0]))
        elif role == "amqtt":
            asyncio.run(run_amqtt(int(args[0]), args[1] == "True"))
        return

    brokers = options.brokers.split(",")
    if options.compare_nodelay:
        brokers.append("amqtt-no-nodelay")
    results = []
    for name in brokers:
        result = bench_broker(name, options.calls, options.warmup)
        results.append(result)
        print(f"{name:18} {result['calls']} calls: median {result['median_ms']:.3f} ms, "
              f"p99 {result['p99_ms']:.3f} ms, mean {result['mean_ms']:.3f} ms, "
              f"{result['calls_per_s']:.0f} calls/s", flush=True)
    if options.json:
        options.json.write_text(json.dumps({"rpc_round_trip": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
