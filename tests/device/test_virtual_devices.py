"""The device service with virtual smart devices over its socket: the protocol end to end."""

from __future__ import annotations

import asyncio
import logging
import re
import time

import pytest
from runtime import protocol
from runtime.exception import ParameterError, RPCError
from runtime.protocol import MessageType
from runtime.virtual import Faults

from tests.support.wait import wait_for_async

KOALA_UID = protocol.make_uid(13, 1, 777)


async def test_discovery_subscribes_the_default_params_at_40_ms(rig):
    device = await rig.plug("KoalaBear", KOALA_UID)
    info = await rig.online(device)
    assert info.type == "KoalaBear" and info.type_id == 13 and info.uid == str(KOALA_UID)
    assert info.subscription.interval_ms == 40
    assert info.subscription.params == ["duty_cycle_a", "duty_cycle_b", "enc_a", "enc_b"]
    assert (device.params, device.delay_ms) == (0b1_0000_0001_0011, 40)
    assert [p.name for p in info.params][:2] == ["duty_cycle_a", "duty_cycle_b"]
    assert info.params[2].lower == 0 and info.params[0].upper == 1


async def test_values_flow_into_the_buffer(rig):
    device = await rig.plug("KoalaBear", KOALA_UID)
    await rig.online(device)
    device.values["enc_a"] = 1234.5
    buffer = rig.buffers.open_device(KOALA_UID)
    await wait_for_async(lambda: buffer.get("enc_a") == 1234.5)
    count = buffer.update_count
    await wait_for_async(lambda: buffer.update_count > count + 2)  # streaming every 40 ms
    assert buffer.connected


async def test_desired_values_reach_the_device_only_when_motors_may_move(rig):
    device = await rig.plug("KoalaBear", KOALA_UID)
    await rig.online(device)
    executor = rig.input_store.open_device(KOALA_UID)
    executor.write({"duty_cycle_a": 0.5, "pid_kp_a": 2.0})
    await wait_for_async(lambda: device.values["pid_kp_a"] == 2.0)
    assert device.values["duty_cycle_a"] == 0.0  # idle: motor params held at 0

    await rig.set_mode("auto")
    await wait_for_async(lambda: device.values["duty_cycle_a"] == 0.5)  # released: resent
    executor.set("duty_cycle_b", -0.75)
    await wait_for_async(lambda: device.values["duty_cycle_b"] == -0.75)
    await wait_for_async(lambda: executor.get("duty_cycle_b") == -0.75)  # reported back


async def test_teleop_without_driver_input_holds_motors_at_zero(rig):
    device = await rig.plug("KoalaBear", KOALA_UID)
    await rig.online(device)
    executor = rig.input_store.open_device(KOALA_UID)
    await rig.set_mode("teleop")
    executor.set("duty_cycle_a", 0.4)
    await wait_for_async(lambda: device.values["duty_cycle_a"] == 0.0
                         and executor.get("duty_cycle_a") == 0.0)  # sent as 0, reported back
    assert rig.manager.guard.verdict.rule == "no-input"
    gamepad = rig.live_input()  # fresh for an hour: only `connected` can stop it below
    await wait_for_async(lambda: device.values["duty_cycle_a"] == pytest.approx(0.4))
    gamepad.connected = False  # the broker service saw the driver station go
    await wait_for_async(lambda: device.values["duty_cycle_a"] == 0.0)
    assert rig.manager.guard.verdict.rule == "no-input"
    rig.input_store.forget(gamepad)  # the broker service restarts: a new gamepad segment
    rig.live_input()
    await wait_for_async(lambda: device.values["duty_cycle_a"] == pytest.approx(0.4))


async def test_stale_driver_input_holds_motors_although_connected(rig):
    """A broker service that died cannot clear ``connected``: only freshness counts it out."""
    device = await rig.plug("KoalaBear", KOALA_UID)
    await rig.online(device)
    await rig.set_mode("teleop")
    gamepad = rig.live_input()
    rig.input_store.open_device(KOALA_UID).set("duty_cycle_b", -0.3)
    await wait_for_async(lambda: device.values["duty_cycle_b"] == pytest.approx(-0.3))
    gamepad.update(0, [0.0] * 4, time.time() - 60)  # still connected, last input a minute old
    await wait_for_async(lambda: device.values["duty_cycle_b"] == 0.0)
    assert gamepad.connected and rig.manager.guard.verdict.rule == "no-input"


@pytest.mark.parametrize("mode", ["idle", "estop"])
async def test_idle_and_estop_zero_motors_and_disable(rig, mode):
    device = await rig.plug("KoalaBear", KOALA_UID)
    await rig.online(device)
    await rig.set_mode("auto")
    rig.input_store.open_device(KOALA_UID).set("duty_cycle_a", 1.0)
    await wait_for_async(lambda: device.values["duty_cycle_a"] == 1.0)
    await rig.set_mode(mode)
    await wait_for_async(lambda: device.disabled)
    assert device.values["duty_cycle_a"] == 0.0
    kinds = [p.type for p in device.received]
    assert MessageType.DISABLE in kinds


async def test_a_restarted_executor_must_set_the_mode_again(rig):
    device = await rig.plug("KoalaBear", KOALA_UID)
    await rig.online(device)
    await rig.set_mode("auto", since=10.0)
    buffer = rig.input_store.open_device(KOALA_UID)
    buffer.set("duty_cycle_a", 0.5)
    await wait_for_async(lambda: device.values["duty_cycle_a"] == 0.5)
    # The executor restarts: online again, but the retained match is its predecessor's.
    await rig.executor_online(started=20.0)
    await wait_for_async(lambda: device.values["duty_cycle_a"] == 0.0)
    await rig.set_mode("auto", since=21.0)  # its own mode start: the motors may move again
    buffer.set("duty_cycle_a", 0.25)
    await wait_for_async(lambda: device.values["duty_cycle_a"] == 0.25)


async def test_read_only_params_are_never_written(rig):
    switch = await rig.plug("LimitSwitch")
    yogi = await rig.plug("YogiBear")
    await rig.online(switch)
    await rig.online(yogi)
    await rig.set_mode("auto")
    with pytest.raises(ParameterError, match="cannot be written"):
        rig.input_store.open_device(switch.uid).set("switch0", True)
    motor = rig.input_store.open_device(yogi.uid)
    with pytest.raises(ParameterError, match="cannot be written"):
        motor.write({"motor_current": 5.0, "duty_cycle": 0.5})
    motor.write({"duty_cycle": 0.5, "deadband": 0.125})
    await wait_for_async(lambda: yogi.values["deadband"] == 0.125)
    # a read round trip through the switch's link: its write loop has run since the mode start
    assert "switch0" in await rig.call("read", str(switch.uid))
    assert MessageType.DEVICE_WRITE not in [p.type for p in switch.received]
    writes = [p for p in yogi.received if p.type == MessageType.DEVICE_WRITE]
    assert writes  # the refused write sent nothing, the good one went out
    for packet in writes:
        written = protocol.parse_values(yogi.device_type, packet.payload)
        assert all(yogi.device_type.param(name).writeable for name in written), written
    assert yogi.values["motor_current"] != 5.0


async def test_device_heartbeats_are_answered_whatever_else_happens(rig):
    device = await rig.plug("KoalaBear", KOALA_UID, heartbeat_period=0.02)
    await rig.online(device)
    await rig.set_mode("auto")
    executor = rig.input_store.open_device(KOALA_UID)
    sent = device.heartbeats_sent
    for i in range(2000):  # a flood of desired values and RPC reads meanwhile
        executor.set("duty_cycle_a", (i % 100) / 100)
        if i % 100 == 0:
            await rig.call("read", str(KOALA_UID))
        await asyncio.sleep(0)
    # every request answered: at some moment at most the last one is still on its way back
    await wait_for_async(lambda: device.heartbeats_sent >= sent + 25
                         and device.heartbeats_sent - device.heartbeat_responses <= 1,
                         message=lambda: f"{device.heartbeat_responses} answers to "
                         f"{device.heartbeats_sent} heartbeat requests")
    assert device.self_disables == 0


async def test_unplug_and_replug_under_the_same_uid(rig):
    device = await rig.plug("KoalaBear", KOALA_UID)
    await rig.online(device)
    await rig.unplug(device)
    await wait_for_async(lambda: rig.infos.get(str(KOALA_UID), "absent") is None)
    assert str(KOALA_UID) not in rig.buffers.device_uids()
    again = await rig.plug("KoalaBear", KOALA_UID)
    await rig.online(again)
    assert rig.buffers.open_device(KOALA_UID).connected


async def test_a_silent_device_is_removed_after_a_second(rig, caplog):
    caplog.set_level(logging.INFO, "runtime.service.device")
    plugged = time.monotonic()
    device = await rig.plug("KoalaBear", KOALA_UID, Faults(silent_after=30))
    await rig.online(device)
    await wait_for_async(lambda: rig.infos.get(str(KOALA_UID), "absent") is None)
    assert str(KOALA_UID) not in rig.manager.devices
    # the log says how long it was silent: past the limit, and not longer than it was plugged
    (removed,) = [m for r in caplog.records if "removed: no packet for" in (m := r.getMessage())]
    found = re.search(r"no packet for ([0-9.]+) s", removed)
    assert found is not None
    silent = float(found.group(1))
    assert 1.0 <= silent <= time.monotonic() - plugged + 0.05  # (rounded to 0.1 s)


async def test_a_quiet_device_that_answers_the_last_ping_is_kept(mosquitto_broker, robot_name):
    """No stream and no heartbeats: the device speaks only when spoken to. Each time it looks
    silent it gets a last Ping; it answers, so its session goes on."""
    from tests.device.rig import DeviceRig

    rig = DeviceRig(mosquitto_broker.url, robot_name)
    await rig.start(discovery_timeout=1.0, subscription_interval=0.0)  # no DeviceData stream
    try:
        device = await rig.plug("KoalaBear", KOALA_UID, heartbeat_period=3600.0)
        await rig.online(device)
        session = rig.manager.devices[str(KOALA_UID)]
        pings = sum(p.type == MessageType.PING for p in device.received)
        await wait_for_async(  # two last Pings: it looked silent twice and answered both
            lambda: sum(p.type == MessageType.PING for p in device.received) >= pings + 2,
            message="the quiet device was never probed")
        assert not session.gone and rig.manager.devices.get(str(KOALA_UID)) is session
    finally:
        await rig.stop()


async def test_an_unresponsive_connection_is_released(rig):
    device = await rig.plug("KoalaBear", KOALA_UID, Faults(unresponsive=True))
    task = rig.devices[-1][1]
    await asyncio.wait_for(task, 10)  # the service closed the connection after discovery
    assert str(KOALA_UID) not in rig.infos
    assert device.received and all(p.type == MessageType.PING for p in device.received)


@pytest.mark.parametrize("faults", [Faults(garbage=True), Faults(bad_checksum=True)])
async def test_garbage_and_bad_checksums_are_survived(rig, faults):
    device = await rig.plug("KoalaBear", KOALA_UID, faults)
    await rig.online(device)
    device.values["enc_b"] = 42.0
    buffer = rig.buffers.open_device(KOALA_UID)
    await wait_for_async(lambda: buffer.get("enc_b") == 42.0)
    client = rig.manager.devices[str(KOALA_UID)]
    assert client.decoder.bad_frames + client.decoder.skipped_bytes > 0  # it did see them
    healthy = await rig.plug("LimitSwitch")
    await rig.online(healthy)  # the service is still fine


async def test_rpc_methods(rig):
    device = await rig.plug("KoalaBear", KOALA_UID)
    await rig.online(device)
    uid = str(KOALA_UID)
    listed = await rig.call("list")
    assert [entry["uid"] for entry in listed] == [uid]
    assert "enc_a" in listed[0]["values"]

    device.values["deadband_a"] = 0.25
    assert await rig.call("read", uid, ["deadband_a"]) == {"deadband_a": 0.25}

    result = await rig.call("subscribe", uid, ["enc_a"], 0.1)
    assert result == {"params": ["enc_a"], "interval_ms": 100}
    assert (device.params, device.delay_ms) == (1 << 4, 100)
    await wait_for_async(lambda: rig.infos[uid].subscription.interval_ms == 100)

    assert await rig.call("heartbeat", uid) > 0
    assert await rig.call("ping", uid) == [uid]
    assert await rig.call("disable", [uid]) == [uid]
    await wait_for_async(lambda: device.disabled)


async def test_rpc_errors_are_clear(rig):
    device = await rig.plug("KoalaBear", KOALA_UID)
    await rig.online(device)
    uid = str(KOALA_UID)
    with pytest.raises(RPCError, match="no device with uid 12345 is connected"):
        await rig.call("read", "12345")
    with pytest.raises(RPCError, match="KoalaBear has no param 'speed'"):
        await rig.call("read", uid, ["speed"])
    with pytest.raises(RPCError, match="does not fit the protocol"):
        await rig.call("subscribe", uid, None, 100.0)
    yogi = await rig.plug("YogiBear")
    await rig.online(yogi)
    with pytest.raises(RPCError, match="not readable: pid_pos_setpoint"):
        await rig.call("subscribe", str(yogi.uid), ["pid_pos_setpoint"])
    with pytest.raises(RPCError, match="cannot read params that are not readable: pid_pos_kp"):
        await rig.call("read", str(yogi.uid), ["enc_pos", "pid_pos_kp"])
    for timeout in (-1, 0, 61):
        with pytest.raises(RPCError, match="heartbeat timeout must be above 0 and at most 60"):
            await rig.call("heartbeat", uid, None, timeout)
    assert uid in [entry["uid"] for entry in await rig.call("list")]  # still serving
