"""Logins on the page: the robot's Mosquitto ACL (broker-config/acl) on the embedded broker."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.support.wait import wait_for
from tests.web.conftest import Station, start_station

pytestmark = pytest.mark.slow

ACL = Path(__file__).resolve().parents[2] / "broker-config" / "acl"
PASSWORDS = {"services": "s3rvices", "driver": "dr1ver", "monitor": "m0nitor"}


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Station]:
    """A robot whose broker wants logins; the services share one login (``runtime up``)."""
    tmp = tmp_path_factory.mktemp("accounts")
    tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    for user, password in PASSWORDS.items():
        subprocess.run([tool, "-b", *(["-c"] if user == "services" else []),
                        str(tmp / "passwd"), user, password], check=True, capture_output=True)
    (tmp / "acl").write_text(ACL.read_text() + "\nuser services\ntopic readwrite runtime/#\n")
    (tmp / "password").write_text(PASSWORDS["services"] + "\n")
    station = start_station(tmp, "--broker-password-file", str(tmp / "passwd"),
                            "--broker-acl-file", str(tmp / "acl"), "--user", "services",
                            "--password-file", str(tmp / "password"))
    station.robot.url = station.robot.url.replace("://", "://services:s3rvices@", 1)
    try:
        yield station
    finally:
        assert station.robot.stop() == 0


def test_a_refused_login_is_said_plainly(browser: Browser, guarded: Station):
    page = guarded.open(browser)  # no login: anonymous
    expect(page.locator("#connection")).to_have_attribute("data-state", "refused")
    expect(page.locator(".message.error")).to_contain_text("refused")
    page.fill("#login-user", "driver")
    page.fill("#login-password", "wrong")
    page.click("#login button")
    expect(page.locator(".message.error")).to_contain_text("wrong login or password")
    page.close()


def test_the_driver_login_drives(browser: Browser, guarded: Station):
    page = guarded.open(browser, login=("driver", PASSWORDS["driver"]))
    expect(page.locator("#connection")).to_have_text("connected as driver")
    expect(page.locator("#btn-teleop")).to_be_enabled()
    page.click("#btn-teleop")
    wait_for(lambda: guarded.mode() == "teleop")
    guarded.call("executor", "set_mode", "idle")
    page.close()


def test_a_monitor_login_watches_and_cannot_press_teleop(browser: Browser, guarded: Station):
    page = guarded.open(browser, login=("monitor", PASSWORDS["monitor"]))
    expect(page.locator("#connection")).to_have_text("connected as monitor")
    expect(page.locator(".message.warning")).to_contain_text("watching only")
    for control in ("#btn-teleop", "#btn-auto", "#btn-estop", "#btn-upload"):
        expect(page.locator(control)).to_be_disabled()
    expect(page.locator('#services tr[data-service="executor"] .state')).to_have_text("online")
    expect(page.locator("#sending")).to_contain_text("this login only watches")
    page.keyboard.press("Shift+T")
    expect(page.locator(".message.error")).to_contain_text("may only watch")
    # A request sent anyway is dropped by the broker's ACL: the page says so, nothing changes.
    answer = page.evaluate("""() => window.driverStation.state.link
        .call("executor", "set_mode", [], {mode: "teleop"}, 1500)
        .then(() => "ok", e => e.message)""")
    assert "broker dropped the request" in answer and 'login "monitor"' in answer
    assert guarded.mode() == "idle"
    page.close()
