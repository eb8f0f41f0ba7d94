"""Smart Device codec throughput: encode and StreamDecoder decode of DeviceData frames.

    .venv/bin/python bench/codec.py [--quick]

Frames: a 16-param KoalaBear DeviceData (60 wire bytes) and a 3-param LimitSwitch one (11 bytes),
each with varied values (no two consecutive frames equal). Decode is measured on one stream fed
in big chunks (64 KiB, as a busy reader gets them) and in 64-byte chunks (a USB CDC packet), and
also with ``parse_values`` after it (the device service's full path). Each figure is the median
(and the slowest run, "p99") of several runs. Prints one text line per figure, then a JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable

from runtime import protocol
from runtime.catalog import DeviceType, default_catalog

CATALOG = default_catalog()


def sample_values(device: DeviceType, rng: random.Random) -> dict[str, object]:
    values: dict[str, object] = {}
    for param in device.params:
        if param.type == "bool":
            values[param.name] = rng.random() < 0.5
        elif param.type == "float":
            low = -1.0 if param.lower is None else max(-1.0, param.lower)
            high = 1.0 if param.upper is None else min(1.0, param.upper)
            values[param.name] = rng.uniform(low, high)
        else:
            values[param.name] = rng.randrange(0, 100)
    return values


def run_rates(work: Callable[[], int], runs: int) -> dict[str, float]:
    """Frames per second of ``work()`` (which returns how many frames it handled), per run."""
    work()  # warm-up: caches, and the allocator's first growth, stay out of the figures
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        frames = work()
        rates.append(frames / (time.perf_counter() - start))
    rates.sort()
    return {
        "median_fps": statistics.median(rates),
        "p99_fps": rates[max(0, int(len(rates) * 0.01) - 1)],  # slowest run(s)
        "best_fps": rates[-1],
        "runs": runs,
    }


def encode_work(device: DeviceType, values: list[dict[str, object]]) -> Callable[[], int]:
    def work() -> int:
        for item in values:
            protocol.device_data(device, item)
        return len(values)

    return work


def write_work(device: DeviceType, values: list[dict[str, object]]) -> Callable[[], int]:
    writeable = [{k: v for k, v in item.items() if device.param(k).writeable} for item in values]

    def work() -> int:
        for item in writeable:
            protocol.device_write(device, item)
        return len(writeable)

    return work


def decode_work(stream: bytes, frames: int, chunk: int, parse: DeviceType | None = None):
    chunks = [stream[i : i + chunk] for i in range(0, len(stream), chunk)]

    def work() -> int:
        decoder = protocol.StreamDecoder()
        feed = decoder.feed
        if parse is None:
            for data in chunks:
                feed(data)
        else:
            parse_values = protocol.parse_values
            for data in chunks:
                for packet in feed(data):
                    parse_values(parse, packet.payload)
        if decoder.packets != frames or decoder.bad_frames:
            raise AssertionError(f"decoded {decoder.packets} of {frames}: {decoder.last_error}")
        return frames

    return work


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer frames and runs (< 20 s)")
    args = parser.parse_args()
    count = 5_000 if args.quick else 20_000
    runs = 5 if args.quick else 15
    rng = random.Random(1)
    results: dict[str, dict[str, float]] = {}
    for name in ("KoalaBear", "LimitSwitch"):
        device = CATALOG.get(name)
        values = [sample_values(device, rng) for _ in range(count)]
        stream = b"".join(protocol.device_data(device, item) for item in values)
        key = name.lower()
        results[f"{key}_frame_bytes"] = {"bytes": len(stream) / count}
        results[f"{key}_encode_data"] = run_rates(encode_work(device, values), runs)
        if device.writeable_bitmap:
            results[f"{key}_encode_write"] = run_rates(write_work(device, values), runs)
        for label, chunk in (("64k", 65536), ("64b", 64)):
            work = decode_work(stream, count, chunk)
            results[f"{key}_decode_{label}"] = run_rates(work, runs)
            work = decode_work(stream, count, chunk, parse=device)
            results[f"{key}_decode_parse_{label}"] = run_rates(work, runs)
    for name, figures in results.items():
        if "bytes" in figures:
            print(f"{name:32} {figures['bytes']:.0f} bytes per frame")
            continue
        print(
            f"{name:32} median {figures['median_fps']:>11,.0f} frames/s"
            f"  p99 {figures['p99_fps']:>11,.0f}  ({figures['runs']} runs)"
        )
    print(json.dumps({"benchmark": "codec", "quick": args.quick, "frames": count, **results}))


if __name__ == "__main__":
    main()
