"""Transport addresses: one value type, validated at construction, refused at the command line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st
from runtime.address import Address, AddressError

RUNTIME = [sys.executable, "-m", "runtime"]


@pytest.mark.parametrize(("text", "expected"), [
    ("serial:/dev/ttyACM0", Address("serial", path="/dev/ttyACM0")),
    ("pty:/tmp/koala", Address("pty", path="/tmp/koala")),
    ("unix:/run/runtime/virtual.sock", Address("unix", path="/run/runtime/virtual.sock")),
    ("tcp:127.0.0.1:5000", Address("tcp", host="127.0.0.1", port=5000)),
    (" tcp::5000 ", Address("tcp", host="127.0.0.1", port=5000)),
    ("tcp:[::1]:5000", Address("tcp", host="::1", port=5000)),
])
def test_each_kind_parses_and_prints_back(text, expected):
    address = Address.parse(text)
    assert address == expected
    assert Address.parse(str(address)) == address


@pytest.mark.parametrize("text", [
    "", "koala", "usb:/dev/ttyACM0", "unix:", "serial:", "tcp:host", "tcp:host:http",
    "tcp:host:70000", "tcp::-1", "tcp: :5000", "tcp:1.2.3.4:\uff15\uff10\uff10\uff10",
])
def test_bad_addresses_say_what_is_accepted(text):
    with pytest.raises(AddressError) as info:
        Address.parse(text)
    assert isinstance(info.value, ValueError)
    assert any(word in info.value.message for word in ("PATH", "PORT", "port", "host"))


def test_a_place_can_limit_the_kinds():
    assert Address.parse("unix:/x", ("unix", "tcp")).kind == "unix"
    with pytest.raises(AddressError, match="is a serial address; here use unix:PATH or tcp"):
        Address.parse("serial:/dev/ttyACM0", ("unix", "tcp"))


@given(port=st.integers(0, 65535), host=st.from_regex(r"[a-z0-9.-]{1,20}", fullmatch=True))
def test_tcp_round_trips(port, host):
    address = Address("tcp", host=host, port=port)
    assert Address.parse(str(address)) == address


@pytest.mark.parametrize("argv", [
    ["virtual-device", "KoalaBear", "--generation", "lowcar", "--connect", "usb:/dev/x"],
    ["virtual-device", "KoalaBear", "--connect", "tcp:localhost"],
    ["service", "device", "--virtual-listen", "serial:/dev/ttyACM0"],
    ["service", "device", "--virtual-listen", "bogus"],
    ["up", "--virtual-listen", "bogus"],
    ["up", "--virtual-listen", "tcp:localhost"],
])
def test_a_bad_address_fails_at_the_command_line(argv):
    result = subprocess.run([*RUNTIME, *argv], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "Invalid value for '--" in result.stderr and "PORT" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1  # one line (the CLI error boundary)


@pytest.mark.parametrize("argv", [["up"], ["service", "device"], ["virtual-device"]])
def test_help_shows_the_accepted_address_forms(argv):
    """The address type's metavar in ``--help`` (it once crashed ``--help`` on click 8.2+)."""
    result = subprocess.run([*RUNTIME, *argv, "--help"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "tcp:HOST:PORT" in result.stdout


def test_a_bad_virtual_listen_in_the_environment_fails_before_anything_starts(tmp_path):
    """``RUNTIME_VIRTUAL_LISTEN`` goes through the same click type as the flag."""
    env = {**os.environ, "RUNTIME_VIRTUAL_LISTEN": "bogus"}
    result = subprocess.run([*RUNTIME, "up", "--state-dir", str(tmp_path)], capture_output=True,
                            text=True, timeout=60, env=env)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "--virtual-listen" in result.stderr and "unix:PATH" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
