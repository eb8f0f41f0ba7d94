"""The page against the compose arrangement, without Docker: the shipped Mosquitto config
(WebSockets listener, ACL, make-passwords' logins), each service logged in as itself, and the
page served by ``runtime web`` (what compose's ``web`` service runs)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import Browser, expect
from runtime import aliases
from runtime.mqtt_server import free_port
from runtime.remote import call_sync
from runtime.up.stack import SAMPLE

from tests.deploy.conftest import Credentials, make_credentials, shipped_mosquitto_config
from tests.support.brokers import MosquittoTestBroker, mosquitto_with_config
from tests.support.wait import wait_for
from tests.web.conftest import FAKE_GAMEPAD, KOALA

pytestmark = pytest.mark.slow

RUNTIME = [sys.executable, "-m", "runtime"]


@dataclass
class Deployment:
    mosquitto: MosquittoTestBroker
    credentials: Credentials
    robot: str
    page_url: str
    processes: list[subprocess.Popen[str]]

    def url(self, account: str) -> str:
        password = self.credentials.passwords[account]
        return f"mqtt://{account}:{password}@127.0.0.1:{self.mosquitto.port}"

    def call(self, account: str, service: str, method: str, *args: Any) -> Any:
        with ThreadPoolExecutor(1) as pool:  # Playwright's sync API owns this thread's loop
            return pool.submit(call_sync, self.url(account), service, method, args,
                               robot=self.robot, timeout=10).result()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    tmp = tmp_path_factory.mktemp("mosquitto-web")
    credentials = make_credentials(tmp)
    mosquitto = mosquitto_with_config(lambda b: shipped_mosquitto_config(b, credentials))
    robot = f"web{uuid.uuid4().hex[:6]}"
    state = tmp / "state"
    state.mkdir()
    shutil.copyfile(SAMPLE, state / "studentcode.py")
    aliases.set_alias(state, "koala", KOALA)
    web_port = free_port()
    socket_path = tmp / "virtual.sock"
    env = {**os.environ, "RUNTIME_ROBOT": robot, "PYTHONUNBUFFERED": "1"}
    deployment = Deployment(mosquitto, credentials, robot, f"http://127.0.0.1:{web_port}/", [])

    def start(*argv: str) -> None:
        deployment.processes.append(subprocess.Popen(
            [*RUNTIME, *argv], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            text=True))

    try:
        for name in ("broker", "device", "executor"):
            extra = ["--virtual-listen", f"unix:{socket_path}"] if name == "device" else []
            start("service", name, "--mqtt", deployment.url(name), "--state-dir", str(state),
                  "--observer", "poll", "--serial-glob", str(tmp / "none*"), *extra)
        start("web", "--listen", f"127.0.0.1:{web_port}", "--ws-port",
              str(mosquitto.websockets_port))  # type: ignore[attr-defined]
        wait_for(socket_path.exists, timeout=30, message="the device service did not start")
        start("virtual-device", "KoalaBear", "--uid", "42", "--connect", f"unix:{socket_path}")
        wait_for(lambda: _listed(deployment), timeout=30, message="the KoalaBear was not listed")
        yield deployment
    finally:
        for process in reversed(deployment.processes):
            process.send_signal(signal.SIGINT)
        for process in deployment.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        mosquitto.close()


def _listed(deployment: Deployment) -> bool:
    try:
        return any(device.get("uid") == KOALA
                   for device in deployment.call("executor", "device", "list"))
    except Exception:
        return False


def test_the_page_drives_through_mosquittos_websockets(browser: Browser, deployment: Deployment):
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    page.add_init_script(FAKE_GAMEPAD)
    page.goto(deployment.page_url)
    expect(page.locator("#connection")).to_have_attribute("data-state", "refused")
    page.fill("#login-user", "driver")
    page.fill("#login-password", deployment.credentials.passwords["driver"])
    page.click("#login button")
    expect(page.locator("#connection")).to_have_text("connected as driver")
    expect(page.locator(f'#devices tr[data-uid="{KOALA}"] .type')).to_have_text("KoalaBear")
    expect(page.locator('#services tr[data-service="executor"] .state')).to_have_text("online")
    page.click("#btn-teleop")
    wait_for(lambda: deployment.call("driver", "executor", "get_mode")["mode"] == "teleop")
    page.evaluate("setTestPad([0, -0.8, 0, 0], [])")
    wait_for(lambda: deployment.call("executor", "device", "read", KOALA, ["duty_cycle_a"])
             ["duty_cycle_a"] == pytest.approx(0.4, abs=1e-3))
    page.keyboard.press(" ")
    wait_for(lambda: deployment.call("driver", "executor", "get_mode")["mode"] == "estop")
    page.close()


def test_a_monitor_login_on_mosquitto_only_watches(browser: Browser, deployment: Deployment):
    page = browser.new_page()
    page.goto(deployment.page_url)
    page.fill("#login-user", "monitor")
    page.fill("#login-password", deployment.credentials.passwords["monitor"])
    page.click("#login button")
    expect(page.locator("#connection")).to_have_text("connected as monitor")
    expect(page.locator(f'#devices tr[data-uid="{KOALA}"] .type')).to_have_text("KoalaBear")
    expect(page.locator("#btn-teleop")).to_be_disabled()
    page.close()
