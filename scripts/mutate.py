"""Mutation check of the safety-critical code (cosmic-ray): does the suite notice a one-line change?

Usage: ``./run mutate [MODULE...]`` (default: every target of ``TARGETS``). A module's path
runs each of its targets (a module may have several, ``module#label``, each with its own tests);
a ``module#label`` runs that one. Prints cosmic-ray's report of each target and a last line
``<target>: N mutants, K survived``; exits 1 if any survived. Not part of ``./run test``
(minutes per module on a loaded 2-core machine).

Each module is mapped to the functions that carry the safety rule (only their lines are
mutated) and to the few tests that must kill every mutant, so a run takes minutes, not hours.
The mutants are made in a copy of the working tree (tracked and new files) in a temporary
directory, imported ahead of the editable install through ``PYTHONPATH`` (subprocesses inherit
it), so the working tree is never modified, even when a run is killed.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Target:
    functions: tuple[str, ...]  # "Class.method" or "function": the lines that are mutated
    tests: tuple[str, ...]  # pytest arguments: the tests that must kill the mutants


TARGETS: dict[str, Target] = {
    # RPC reply guarantee: every request gets exactly one reply, errors included
    "shared/runtime/remote/rpc.py": Target(
        ("_Server.on_request", "_Server._call", "_Server._error_reply", "_encode_reply"),
        ("tests/foundation/test_remote_rpc.py", "tests/foundation/test_rpc_reply_guarantee.py",
         "-k", "amqtt or reply_guarantee"),
    ),
    # the stop rules: state in, verdict out (a pure class, table-tested: the fastest target)
    "services/device/safety.py": Target(
        ("StopRules.input_live", "StopRules.check", "StopRules._held"),
        ("tests/device/test_stop_rules.py", "tests/device/test_stop_rules_edges.py"),
    ),
    # executor liveness as the device service reads it: a frozen or dead executor is seen
    "shared/runtime/buffer/liveness.py": Target(
        ("LivenessMonitor.silent_for", "LivenessMonitor._attach", "LivenessBeat._tick"),
        ("tests/device/test_executor_liveness.py", "tests/device/test_liveness_edges.py",
         "-k", "monitor or liveness_edges"),
    ),
    # the stop fast path, shared memory: the executor states its mode, the device service rings
    "shared/runtime/buffer/liveness.py#mode": Target(
        ("LivenessBuffer.mode", "LivenessBuffer.state_mode", "LivenessMonitor.read",
         "LivenessMonitor.watch_mode"),
        ("tests/device/test_stated_mode.py",),
    ),
    # buffer wake-ups: a write never leaves a waiter asleep
    "shared/runtime/buffer/wake.py": Target(
        ("WaiterTable.notify", "Waiter._rearm", "Waiter._drain", "Waiter.wait",
         "Waiter.wait_async"),
        ("tests/buffer/test_wake.py", "tests/buffer/test_wake_deadlines.py",
         "tests/buffer/test_buffers.py", "-k", "wake or waiter or woken"),
    ),
    # the executor's stop path: a mode change states the mode, zeroes motors, ends the run
    "services/executor/dispatcher.py": Target(
        ("Dispatcher.change_mode", "Dispatcher._state_mode", "Dispatcher._ask_stop",
         "Dispatcher._switch", "Dispatcher._on_gone"),
        ("tests/executor/test_service.py", "tests/executor/test_dispatcher.py",
         "tests/executor/test_student_process.py", "tests/executor/test_overlapping_changes.py",
         "-k", "mosquitto or latched or other_logins or os._exit or overlapping"),
    ),
    # the device side of a stop: a new verdict reaches every device in the loop turn it rang
    "services/device/guard.py": Target(
        ("MotorGuard.apply_now", "MotorGuard._on_stated_mode", "MotorGuard._finish"),
        ("tests/device/test_stated_mode.py", "tests/device/test_guard_edges.py",
         "tests/device/test_virtual_devices.py",
         "-k", "stated or motors or estop or restarted_executor or guard_edges"),
    ),
    # a session's stop and its silence rule (the watchdog; a paused process is not silence)
    "services/device/session.py": Target(
        ("DeviceSession.stop_now", "DeviceSession._watchdog", "DeviceSession._judged",
         "DeviceSession._talking"),
        ("tests/device/test_stated_mode.py", "tests/device/test_virtual_devices.py",
         "tests/device/test_sessions.py", "tests/lowcar/test_session.py",
         "tests/resilience/test_device_pauses.py",
         "-k", "stated or silent or stalled or estop or reset or unresponsive or device_service"
               " or driver_input or stall_not_silence"),
    ),
    # Hibike's silence verdict: a last Ping before a device is dropped
    "services/device/client.py": Target(
        ("SmartDeviceClient._judged", "SmartDeviceClient._silence_verdict",
         "SmartDeviceClient._talking"),
        ("tests/device/test_virtual_devices.py", "tests/device/test_sessions.py",
         "tests/resilience/test_device_pauses.py",
         "-k", "silent or quiet or stalled or reset or unresponsive or heartbeats"
               " or device_service"),
    ),
    # lowcar's silence verdict: bytes already received are decoded before a device is dropped
    "services/device/lowcar.py": Target(
        ("LowcarSession._silence_verdict",),
        ("tests/lowcar/test_session.py", "-k", "silent or pings"),
    ),
}


#: A binary operator is replaced by + or - only (not by each of the eleven others: they fail or
#: pass together, and would triple a run's length).
EXCLUDED_OPERATORS = [r"core/ReplaceBinaryOperator_\w+_(?!Add$|Sub$)\w+$"]


def line_ranges(source: str, names: tuple[str, ...]) -> list[str]:
    """``"first-last"`` line ranges of the named functions and methods of ``source``."""
    found: dict[str, str] = {}
    tree = ast.parse(source)
    for node in tree.body:
        members = node.body if isinstance(node, ast.ClassDef) else [node]
        prefix = f"{node.name}." if isinstance(node, ast.ClassDef) else ""
        for member in members:
            if isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef):
                # the body only: mutants of annotations (strings here) cannot be observed
                found[prefix + member.name] = f"{member.body[0].lineno}-{member.end_lineno}"
    missing = [name for name in names if name not in found]
    if missing:
        raise SystemExit(f"mutate: not found (renamed?): {', '.join(missing)}")
    return [found[name] for name in names]


def copy_tree(work: Path) -> Path:
    """The working tree's files in ``work/repo`` and the package layout in ``work/pkg``."""
    repo, package = work / "repo", work / "pkg" / "runtime"
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=REPO, capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, files):
        source = REPO / os.fsdecode(name)
        if source.is_file():
            target = repo / os.fsdecode(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    package.mkdir(parents=True)
    for entry in (repo / "shared" / "runtime").iterdir():
        (package / entry.name).symlink_to(entry)
    (package / "service").symlink_to(repo / "services")
    return repo


def run(key: str, target: Target, work: Path, repo: Path, env: dict[str, str]) -> int:
    """Mutate one target (``module`` or ``module#label``); the number of surviving mutants."""
    module, _, label = key.partition("#")
    name = Path(module).stem + (f"-{label}" if label else "")
    ranges = line_ranges((repo / module).read_text(), target.functions)
    config, session = work / f"{name}.toml", work / f"{name}.sqlite"
    test_command = " ".join([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                             *(f"'{arg}'" if " " in arg else arg for arg in target.tests)])
    # JSON strings and arrays are valid TOML
    config.write_text(
        "[cosmic-ray]\n"
        f"module-path = {json.dumps(module)}\n"
        "timeout = 180.0\n"
        "excluded-modules = []\n"
        f"test-command = {json.dumps(test_command)}\n\n"
        "[cosmic-ray.distributor]\n"
        'name = "local"\n\n'
        "[cosmic-ray.filters.line-filter]\n"
        f"lines = {{ {json.dumps(module)} = {json.dumps(ranges)} }}\n\n"
        "[cosmic-ray.filters.operators-filter]\n"
        f"exclude-operators = {json.dumps(EXCLUDED_OPERATORS)}\n"
    )
    bin_dir = Path(sys.executable).parent

    def tool(*args: str, check: bool = True) -> str:
        result = subprocess.run([str(bin_dir / args[0]), *args[1:]], cwd=repo, env=env,
                                capture_output=True, text=True)
        if check and result.returncode != 0:
            raise SystemExit(f"mutate: {' '.join(args[:2])} failed:\n{result.stdout}"
                             f"{result.stderr}")
        return result.stdout

    print(f"== {key}: {', '.join(target.functions)} (lines {', '.join(ranges)})", flush=True)
    print(f"   tests: {' '.join(target.tests)}", flush=True)
    tool("cosmic-ray", "baseline", str(config))  # the tests pass on the unmutated copy
    tool("cosmic-ray", "init", str(config), str(session))
    tool("cr-filter-lines", "--config", str(config), str(session))
    tool("cr-filter-operators", str(session), str(config))
    tool("cosmic-ray", "exec", str(config), str(session))
    survivors = tool("cr-report", "--surviving-only", "--show-diff", str(session))
    report = tool("cr-report", str(session))
    total = int(re.search(r"total jobs: (\d+)", report).group(1))  # type: ignore[union-attr]
    skipped = report.count("WorkerOutcome.SKIPPED")
    survived = int(m.group(1)) if (m := re.search(r"surviving mutants: (\d+)", report)) else 0
    for block in survivors.split("[job-id]")[1:]:
        if "SURVIVED" in block:
            print("   survived:" + block.rstrip().replace("\n", "\n   "))
    print(f"{key}: {total - skipped} mutants, {survived} survived", flush=True)
    return survived


def main(argv: list[str]) -> int:
    # a module's path names every target of it ("liveness.py" and "liveness.py#mode")
    keys = [key for key in TARGETS
            if not argv or key in argv or key.partition("#")[0] in argv]
    unknown = [arg for arg in argv if not any(arg in (key, key.partition("#")[0]) for key in keys)]
    if unknown:
        print(f"mutate: no target {', '.join(unknown)}; known: {', '.join(TARGETS)}",
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="runtime-mutate.") as temp:
        work = Path(temp)
        repo = copy_tree(work)
        env = {**os.environ, "PYTHONPATH": f"{work / 'pkg'}{os.pathsep}{repo}",
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/sbin{os.pathsep}"
                       f"{os.environ.get('PATH', '')}"}
        check = subprocess.run([sys.executable, "-c", "import runtime; print(runtime.__file__)"],
                               env=env, cwd=repo, capture_output=True, text=True, check=True)
        if not check.stdout.startswith(temp):
            raise SystemExit(f"mutate: runtime is imported from {check.stdout.strip()}, "
                             "not from the copy")
        survived = sum(run(key, TARGETS[key], work, repo, env) for key in keys)
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
