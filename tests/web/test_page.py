"""The driver station in a real browser against a real ``runtime up`` with simulated devices."""

from __future__ import annotations

import re
import subprocess

import pytest
from playwright.sync_api import Browser, Page, expect
from runtime.catalog import default_catalog
from runtime.virtual import make_virtual_uid

from tests.e2e.robot import RUNTIME
from tests.support.wait import wait_for
from tests.web.conftest import KOALA, Station, screenshot

pytestmark = pytest.mark.slow

TELEOP_PRINTS = '''\
def teleop_setup():
    print("hello from teleop")


def teleop_main():
    Robot.set_value("koala", "duty_cycle_a", Gamepad.get_value("joystick_left_y"))
'''


@pytest.fixture
def page(browser: Browser, station: Station):
    page = station.open(browser)
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    yield page
    assert page.errors == []  # type: ignore[attr-defined]
    page.close()
    # estop latches (docs/deployment.md, Authority): the next test starts from idle, cleared
    station.call("executor", "set_mode", "idle", clear_estop=True)


def test_the_page_lists_the_simulated_devices_with_live_values(page: Page, station: Station):
    koala = page.locator(f'#devices tr[data-uid="{KOALA}"]')
    expect(koala.locator(".type")).to_have_text("KoalaBear")
    expect(koala.locator("input.alias")).to_have_value("koala")
    switch = page.locator("#devices tr", has_text="LimitSwitch")
    expect(switch.locator('.value[data-param="switch0"]')).to_have_text(re.compile("true|false"))
    for service in ("broker", "device", "executor"):
        expect(page.locator(f'#services tr[data-service="{service}"] .state')).to_have_text(
            "online")
    expect(page.locator("#rtt")).to_have_text(re.compile(r"RTT \d+\.\d ms"))
    # A value changed elsewhere shows up live.
    station.call("executor", "set_mode", "teleop")
    page.locator("#mode").wait_for()
    expect(page.locator("#mode")).to_have_attribute("data-mode", "teleop")


def test_teleop_and_a_gamepad_drive_the_koalabear(page: Page, station: Station):
    page.check(f'input[data-plot="{KOALA}/duty_cycle_a"]')
    page.click("#btn-teleop")
    wait_for(lambda: station.mode() == "teleop")
    page.evaluate("setTestPad([0, -0.8, 0, 0], [])")  # left stick up (the API's -y)
    # The sample program: duty_cycle_a = forward * 0.5 (SLOW), forward = joystick_left_y.
    wait_for(lambda: station.read(KOALA, "duty_cycle_a") == pytest.approx(0.4, abs=1e-3))
    expect(page.locator("#sending")).to_have_attribute("data-state", "on")
    page.evaluate("setTestPad([0, 0.5, 0, 0], [0])")  # stick down, A held: full speed
    wait_for(lambda: station.read(KOALA, "duty_cycle_a") == pytest.approx(-0.5, abs=1e-3))
    expect(page.locator("#buttons .button").first).to_have_class(re.compile(r"\bon\b"))
    wait_for(lambda: page.evaluate("window.driverStation.plot.t.length") > 20)
    screenshot(page, "driver-station.png")

    page.keyboard.press(" ")  # space: estop
    wait_for(lambda: station.mode() == "estop")
    assert station.read(KOALA, "duty_cycle_a") == 0.0
    expect(page.locator("#mode")).to_have_attribute("data-mode", "estop")


def test_escape_estops_even_while_typing_in_the_editor(page: Page, station: Station):
    page.click("#btn-teleop")
    wait_for(lambda: station.mode() == "teleop")
    page.click("#editor .cm-content")
    page.keyboard.type(" ")  # typing a space in the editor is not an estop
    assert station.mode() == "teleop"
    page.keyboard.press("Escape")
    wait_for(lambda: station.mode() == "estop")


def test_a_hidden_page_stops_sending_and_the_motor_stops(page: Page, station: Station,
                                                         browser: Browser):
    page.click("#btn-teleop")
    wait_for(lambda: station.mode() == "teleop")
    page.evaluate("setTestPad([0, -1, 0, 0], [0])")
    wait_for(lambda: station.read(KOALA, "duty_cycle_a") == pytest.approx(1.0))
    # The driver switches to another tab: this one is hidden and loses the focus.
    other = browser.new_page()
    other.bring_to_front()
    page.evaluate("""() => {
        Object.defineProperty(document, 'visibilityState', {value: 'hidden', configurable: true});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")
    expect(page.locator("#sending")).to_have_attribute("data-state", "off")
    expect(page.locator("#sending")).to_contain_text("hidden")
    wait_for(lambda: station.read(KOALA, "duty_cycle_a") == 0.0)
    assert station.mode() == "teleop"  # still teleop: stopped by the no-input rule
    other.close()


def test_student_print_reaches_the_console_and_lint_marks_a_misspelled_name(
        page: Page, station: Station):
    source = TELEOP_PRINTS + '    Robto.set_value("koala", "duty_cycle_b", 0)\n'
    page.evaluate("src => window.driverStation.program.source = src", source)
    page.click("#btn-upload")
    expect(page.locator("#upload-result")).to_contain_text("uploaded, sha256 ")
    # pylint's undefined-variable on line 7 (Robto) is a marker in the editor.
    marked = page.locator("#lint-list li.error", has_text="Robto")
    expect(marked).to_have_attribute("data-line", "7", timeout=60_000)
    expect(page.locator("#editor .cm-lintRange-error")).to_have_count(1)
    expect(page.locator("#editor .cm-lint-marker-error")).to_have_count(1)
    page.click("#btn-teleop")
    line = page.locator("#console li", has_text="hello from teleop")
    expect(line).to_have_count(1)
    # The misspelling raises in teleop_main: an error in the console, its line linked.
    error = page.locator("#console li.error", has_text="Robto").first
    expect(error).to_be_visible()
    error.locator("a.line-link").first.click()
    expect(page.locator("#editor .cm-activeLine")).to_contain_text("Robto")
    screenshot(page, "driver-station-program.png")
    station.call("executor", "set_mode", "idle")
    page.click("#btn-sample")
    page.click("#btn-upload")
    expect(page.locator("#upload-result")).to_contain_text("uploaded, sha256 ")


def test_the_keyboard_drives_as_runtime_drive_does(page: Page, station: Station):
    page.click("#btn-idle")
    page.keyboard.press("Shift+T")  # T: teleop, as in `runtime drive`
    wait_for(lambda: station.mode() == "teleop")
    page.keyboard.down("w")  # W: left stick up
    wait_for(lambda: station.read(KOALA, "duty_cycle_a") == pytest.approx(0.5))
    page.keyboard.down("j")  # J: button A (the sample's full speed)
    wait_for(lambda: station.read(KOALA, "duty_cycle_a") == pytest.approx(1.0))
    page.keyboard.up("j")
    page.keyboard.up("w")
    wait_for(lambda: station.read(KOALA, "duty_cycle_a") == 0.0)
    page.keyboard.press("Enter")  # Enter: idle
    wait_for(lambda: station.mode() == "idle")


def test_aliases_are_edited_and_params_plotted_from_the_device_table(page: Page,
                                                                     station: Station):
    switch = page.locator("#devices tr", has_text="LimitSwitch")
    uid = switch.get_attribute("data-uid")
    alias = switch.locator("input.alias")
    alias.fill("bumper")
    alias.press("Tab")  # a change event, as when the student leaves the field
    wait_for(lambda: station.call("broker", "list_aliases").get("bumper") == uid)
    alias.fill("")
    alias.press("Tab")
    wait_for(lambda: "bumper" not in station.call("broker", "list_aliases"))
    expect(page.locator("#devices input.alias").first).to_have_value("koala")

    page.check(f'input[data-plot="{KOALA}/duty_cycle_a"]')
    page.check(f'input[data-plot="{uid}/switch0"]')
    expect(page.locator("#plot .uplot canvas")).to_have_count(1)
    expect(page.locator("#plot .u-legend")).to_contain_text("koala duty_cycle_a")
    wait_for(lambda: page.evaluate("window.driverStation.plot.t.length") > 3)


def test_an_unplugged_device_stays_listed_as_unplugged(page: Page, station: Station):
    line = station.robot.wait_for_line("virtual devices")
    address = line.split()[2]
    uid = str(make_virtual_uid(default_catalog().get("LimitSwitch"), 77))
    device = subprocess.Popen([*RUNTIME, "virtual-device", "LimitSwitch", "--uid", "77",
                               "--connect", address],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        row = page.locator(f'#devices tr[data-uid="{uid}"]')
        expect(row).to_have_attribute("data-plugged", "true")
    finally:
        device.terminate()
        device.wait(10)
    expect(row).to_have_attribute("data-plugged", "false")
    expect(row.locator(".type")).to_have_text("LimitSwitch (unplugged)")


def test_the_console_keeps_records_in_time_order_and_highlights_errors(page: Page):
    page.evaluate("""() => {
        const add = (ts, level, message) => window.driverStation.console.add(
            {ts, level, logger: "student", message, context: {}});
        add(10.0, "INFO", "first");
        add(10.2, "ERROR", "third: line 4 went wrong");
        add(10.1, "INFO", "second (it came late)");
    }""")
    items = page.locator("#console li")
    expect(items).to_have_text(["first", "second (it came late)", "third: line 4 went wrong"])
    expect(items.nth(2)).to_have_class(re.compile(r"\berror\b"))
    expect(items.nth(2).locator("a.line-link")).to_have_attribute("data-line", "4")


def test_an_estop_is_latched_and_cleared_only_with_a_confirmation(page: Page, station: Station):
    page.keyboard.press(" ")
    wait_for(lambda: station.mode() == "estop")
    clear = page.locator("#btn-clear-estop")
    expect(clear).to_be_visible()
    page.click("#btn-teleop")  # refused while latched, and the page says so
    expect(page.locator("body")).to_contain_text("refused")
    assert station.mode() == "estop"
    page.once("dialog", lambda dialog: dialog.dismiss())  # changed one's mind: still latched
    clear.click()
    page.click("#btn-teleop")
    assert station.mode() == "estop"
    page.once("dialog", lambda dialog: dialog.accept())
    clear.click()
    wait_for(lambda: station.mode() == "idle")
    expect(clear).to_be_hidden()
    page.click("#btn-teleop")
    wait_for(lambda: station.mode() == "teleop")
