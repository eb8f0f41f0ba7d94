"""Shared-memory buffer costs: get/set of one param, and write-to-woken-reader latency.

    .venv/bin/python bench/buffer.py [--quick]

Prints one text line per figure, then a JSON object. The alternative it beats is an MQTT round
trip on loopback (~300-900 us, see bench/rpc.py).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
import uuid

from runtime.buffer import WAKE_DESIRED, BufferStore, Waiter
from stats import per_call_ns, summary

KOALA = 13 << 72 | 1 << 64 | 42


def woken_reader(robot: str, rounds: int, pipe) -> None:
    with BufferStore(robot) as store, Waiter() as waiter:
        buffer = store.open_device(KOALA)
        waiter.watch(buffer, WAKE_DESIRED)
        pipe.send("ready")
        stamps = []
        for _ in range(rounds):
            while not waiter.wait(5):
                pass
            stamps.append(time.perf_counter_ns())
            buffer.desired("duty_cycle_a")
            pipe.send(len(stamps))  # ack: the writer waits, so wake-ups never coalesce
        pipe.send(stamps)


def wake_latency(robot: str, store: BufferStore, rounds: int) -> list[float]:
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    reader = context.Process(target=woken_reader, args=(robot, rounds, child), daemon=True)
    reader.start()
    assert parent.recv() == "ready"
    writer = store.open_device(KOALA)
    sent = []
    for index in range(rounds):
        time.sleep(0.0005)  # let the reader block in its wait, as a real idle reader does
        sent.append(time.perf_counter_ns())
        writer.set("duty_cycle_a", (index % 100) / 100)
        parent.recv()
    woken = parent.recv()
    reader.join(10)
    return [w - s for s, w in zip(sent, woken, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples (a few seconds)")
    args = parser.parse_args()
    calls = 100_000 if args.quick else 1_000_000
    rounds = 500 if args.quick else 5000
    robot = f"bench-{uuid.uuid4().hex[:8]}"
    with BufferStore(robot) as store:
        device = store.create_device(KOALA, "KoalaBear")
        device.update({"duty_cycle_a": 0.5})
        executor_side = store.open_device(KOALA)
        results = {
            "get_us": summary(per_call_ns(lambda: executor_side.get("duty_cycle_a"), calls), 1e3),
            "set_us": summary(per_call_ns(lambda: executor_side.set("duty_cycle_a", 0.25), calls),
                              1e3),
            "read_all_us": summary(per_call_ns(executor_side.read, calls // 10), 1e3),
            "take_writes_us": summary(per_call_ns(device.take_writes, calls // 10), 1e3),
            "wake_latency_us": summary(wake_latency(robot, store, rounds), 1e3),
        }
    for name, figures in results.items():
        print(f"{name:18} median {figures['median']:8.2f}  p99 {figures['p99']:8.2f}"
              f"  ({figures['samples']} samples)")
    print(json.dumps({"benchmark": "buffer", "quick": args.quick, **results}))


if __name__ == "__main__":
    main()
