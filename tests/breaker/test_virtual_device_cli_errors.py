"""``runtime virtual-device`` as a clumsy user types it: a bad ``--uid`` or an address where no
device service listens gets one line saying what is wrong. Found by the breaker: ``--uid abc``
said ``invalid literal for int() with base 10: 'abc'`` and a missing socket said only ``No such
file or directory``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def virtual_device(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runtime", "virtual-device", *args],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("uid", ["abc", "-5", "1.5", ""])
def test_a_bad_uid_is_named(uid: str, tmp_path: Path) -> None:
    result = virtual_device("KoalaBear", "--uid", uid, "--connect", f"unix:{tmp_path}/none")
    assert result.returncode != 0
    assert f"'{uid}' is not a device uid" in result.stderr
    assert "Traceback" not in result.stderr and "invalid literal" not in result.stderr


@pytest.mark.parametrize("generation", ["hibike", "lowcar"])  # one connect for both (VirtualLink)
def test_no_device_service_at_the_address_is_said_with_the_address(tmp_path: Path,
                                                                    generation: str) -> None:
    address = f"unix:{tmp_path}/none.sock"
    result = virtual_device("KoalaBear", "--generation", generation, "--connect", address)
    assert result.returncode != 0
    assert f"cannot connect to a device service at {address}" in result.stderr
    assert "Traceback" not in result.stderr
