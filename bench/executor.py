"""Executor timing: mode change to setup, main-period jitter, student API cost, input latency.

    .venv/bin/python bench/executor.py [--quick]

- ``mode_to_setup_ms``: inside one student process, ``StudentRunner.change_mode("teleop")``
  to the first line of ``teleop_setup`` running, program loading included. The whole path
  with a fresh student process per run (the RPC, the fork, the load) is ``bench/stop.py``.
- ``main_jitter_ms``: |interval between two teleop_main calls - 20 ms| at 50 Hz (p99 <= 1 ms).
- ``get_value_us`` / ``set_value_us``: one ``Robot.get_value`` / ``Robot.set_value`` on a real
  device buffer, with a device-service process waiting on that buffer (target <= 5 us).
- ``input_to_set_ms``: a gamepad buffer update (by another process, playing the broker) to the
  desired value that teleop_main derives from it being visible to that process (p99 <= 2 ms).

Prints one text line per figure, then a JSON object.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import random
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from runtime.aliases import AliasFile, set_alias
from runtime.api import Mode, StudentAPI
from runtime.buffer import WAKE_DESIRED, BufferStore, Waiter
from runtime.service.executor import StudentRunner
from runtime.service.executor.sync import start_thread
from stats import per_call_ns, summary

KOALA = 13 << 72 | 1 << 64 | 42
PROGRAM = '''
import time
setup_at = None
ticks = []


def teleop_setup():
    global setup_at
    setup_at = time.monotonic()


def teleop_main():
    ticks.append(time.monotonic())
    Robot.set_value("koala", "duty_cycle_a", Gamepad.get_value("joystick_left_y"))
'''


# -- the other services, in another process ----------------------------------------------------
def services(robot: str, rounds: int, period: float, pipe) -> None:
    """Owns the KoalaBear (device service) and gamepad 0 (broker); measures input latency."""
    with BufferStore(robot) as store, Waiter() as waiter:
        koala = store.create_device(str(KOALA), "KoalaBear")
        koala.connected = True
        pad = store.gamepad(0, create=True)
        pad.update(0, (0.0, 0.0, 0.0, 0.0), time.time())
        waiter.watch(koala, WAKE_DESIRED)
        pipe.send("ready")
        command = pipe.recv()
        while command == "drain":  # play a device service taking writes, until "measure"
            while not pipe.poll():
                if waiter.wait(0.05):
                    koala.take_writes()
            command = pipe.recv()
        latencies = []
        rng = random.Random(1)
        for i in range(rounds):
            time.sleep(rng.uniform(0.2, 1.2) * period)  # any phase of the period
            value = round(((i % 19) - 9) / 10, 1) or 0.05
            start = time.monotonic()
            pad.update(0, (0.0, value, 0.0, 0.0), time.time())
            while abs(koala.desired("duty_cycle_a") - value) > 1e-6:  # float32 on the wire
                waiter.wait(0.5)
            latencies.append(time.monotonic() - start)
            koala.take_writes()
        pipe.send(latencies)
        pipe.recv()  # "done": keep the buffers until the executor is finished with them


# -- student API cost ----------------------------------------------------------------------
def api_cost(robot: str, state: Path, calls: int) -> dict[str, dict[str, float]]:
    with BufferStore(robot) as store:
        api = StudentAPI(store, aliases=AliasFile(state))
        api.enable()
        api.match.update(Mode.TELEOP)
        robot_api, gamepad = api.robot, api.gamepad
        return {
            "get_value_us": summary(per_call_ns(
                lambda: robot_api.get_value("koala", "enc_a"), calls), 1e3),
            "set_value_us": summary(per_call_ns(
                lambda: robot_api.set_value("koala", "duty_cycle_a", 0.5), calls), 1e3),
            "set_value_uid_us": summary(per_call_ns(
                lambda: robot_api.set_value(str(KOALA), "duty_cycle_b", -0.5), calls), 1e3),
            "gamepad_get_value_us": summary(per_call_ns(
                lambda: gamepad.get_value("joystick_left_y"), calls), 1e3),
        }


# -- the dispatcher ------------------------------------------------------------------------
def run_dispatcher(robot: str, state: Path, pipe, quick: bool) -> dict[str, dict[str, float]]:
    """StudentRunner (the student process's loop) in this (main) thread; the measurements
    drive it from a thread."""
    store = BufferStore(robot)
    dispatcher = StudentRunner(store, student_code=state / "studentcode.py", state_dir=state)
    results: dict[str, dict[str, float]] = {}
    failure: list[BaseException] = []
    starts = 20 if quick else 100
    jitter_seconds = 3.0 if quick else 20.0

    def wait(predicate, timeout=10.0):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError("the executor did not get there")
            time.sleep(0.0005)

    def drive() -> None:
        try:
            pipe.send("drain")
            delays = []
            for i in range(starts):
                start = time.monotonic()
                dispatcher.change_mode("teleop")
                wait(lambda i=i: dispatcher.mode_starts == i + 1 and dispatcher.module
                     is not None and dispatcher.module.setup_at is not None)
                delays.append(dispatcher.module.setup_at - start)
                dispatcher.change_mode("idle")
                wait(lambda: not dispatcher.mailbox.pending())
            results["mode_to_setup_ms"] = summary(delays, 1e-3)
            dispatcher.change_mode("teleop")
            time.sleep(jitter_seconds)
            ticks = list(dispatcher.module.ticks)[5:]
            period = dispatcher.period
            results["main_jitter_ms"] = summary(
                [abs(b - a - period) for a, b in itertools.pairwise(ticks)], 1e-3)
            pipe.send("measure")
            results["input_to_set_ms"] = summary(pipe.recv(), 1e-3)
            results["early_calls"] = {"count": dispatcher.sync.early_calls}
            dispatcher.change_mode("idle")
        except BaseException as exc:
            failure.append(exc)
        finally:
            dispatcher.shutdown()

    thread = start_thread(threading.Thread(target=drive, name="bench driver"))
    try:
        dispatcher.run()
    finally:
        thread.join()
        store.close()
    if failure:
        raise failure[0]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples (< 20 s)")
    args = parser.parse_args()
    robot = f"bench-{uuid.uuid4().hex[:8]}"
    rounds = 100 if args.quick else 1000
    calls = 100_000 if args.quick else 1_000_000
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    with tempfile.TemporaryDirectory() as directory:
        state = Path(directory)
        (state / "studentcode.py").write_text(PROGRAM)
        set_alias(state, "koala", str(KOALA))
        process = context.Process(target=services, args=(robot, rounds, 0.02, child),
                                  daemon=True)
        process.start()
        try:
            assert parent.recv() == "ready"
            results = api_cost(robot, state, calls)
            results.update(run_dispatcher(robot, state, parent, args.quick))
            parent.send("done")
        finally:
            process.join(10)
            if process.is_alive():
                process.kill()
    for name, figures in results.items():
        if "median" not in figures:
            print(f"{name:22} {figures}")
            continue
        print(f"{name:22} median {figures['median']:8.3f}  p99 {figures['p99']:8.3f}  "
              f"max {figures['max']:8.3f}  ({figures['samples']} samples)")
    print(json.dumps({"benchmark": "executor", "quick": args.quick, **results}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
