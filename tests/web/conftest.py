"""A real browser (Debian's chromium driven by Playwright) on the page of a real ``runtime up``.

The only fake is the gamepad: ``navigator.getGamepads`` returns ``window.testPads``, which a
test sets (``Station.gamepad``), since no USB gamepad exists here.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from runtime.mqtt_server import free_port

from tests.e2e.robot import RunningRobot

# Playwright's assertions retry until their timeout (5 s by default): generous here, since the
# suite shares two slow cores with whole robots; a passing assertion returns at once.
expect.set_options(timeout=20_000)

KOALA = str((13 << 72) | (1 << 64) | 42)
#: Where screenshots for docs/driver-station.md go (RUNTIME_SCREENSHOTS=docs/images ./run test
#: tests/web); unset: nowhere, so a test run does not touch the work tree.
SCREENSHOTS = os.environ.get("RUNTIME_SCREENSHOTS")

# A standard-mapping gamepad whose state the test sets (window.testPads[0]).
FAKE_GAMEPAD = """
window.testPads = [null, null, null, null];
window.setTestPad = (axes, pressed) => {
  window.testPads[0] = {
    id: "Test gamepad (standard)", index: 0, connected: true, mapping: "standard",
    timestamp: performance.now(), axes,
    buttons: Array.from({length: 17}, (_, i) => (
      {pressed: pressed.includes(i), touched: false, value: pressed.includes(i) ? 1 : 0})),
  };
};
navigator.getGamepads = () => window.testPads;
"""


def chromium_path() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    assert Path(path).exists(), "Debian's chromium is missing: ./run test installs it"
    return path


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(),
                                             args=["--no-sandbox"])
        yield browser
        browser.close()


class Station:
    """``runtime up`` with its driver station, and pages opened on it."""

    def __init__(self, robot: RunningRobot, web_port: int, ws_port: int) -> None:
        self.robot = robot
        self.url = f"http://127.0.0.1:{web_port}/"
        self.ws_port = ws_port

    def open(self, browser: Browser, login: tuple[str, str] | None = None) -> Page:
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        page.add_init_script(FAKE_GAMEPAD)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.errors = errors  # type: ignore[attr-defined]
        page.goto(self.url)
        if login is not None:
            page.fill("#login-user", login[0])
            page.fill("#login-password", login[1])
            page.click("#login button")
        return page

    def call(self, service: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """An RPC from Python, on a thread of its own: Playwright's sync API keeps an event
        loop running in this one."""
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(self.robot.call, service, method, *args, **kwargs).result()

    def read(self, uid: str, param: str) -> Any:
        return self.call("device", "read", uid, [param])[param]

    def mode(self) -> str:
        return self.call("executor", "get_mode")["mode"]


def start_station(tmp_path: Path, *args: str) -> Station:
    web_port, ws_port = free_port(), free_port()
    robot = RunningRobot(f"web{uuid.uuid4().hex[:6]}", tmp_path / "state",
                         "--simulate", "KoalaBear:42", "--simulate", "LimitSwitch",
                         "--web", f"127.0.0.1:{web_port}", "--ws-port", str(ws_port), *args)
    robot.wait_until_up()
    return Station(robot, web_port, ws_port)


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Station]:
    running = start_station(tmp_path_factory.mktemp("web"))
    try:
        yield running
    finally:
        assert running.robot.stop() == 0


def screenshot(page: Page, name: str) -> None:
    """Keep a picture for docs/driver-station.md (taken from the test run)."""
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / name), full_page=True)
