"""The gateway's device data on a bare Mosquitto, the test playing the device service (its
retained ``device/<uid>/info``, its ``device/<uid>/data`` changes and its ``read`` RPC), so the
order of a ``read`` answer and a data message, and a broker restart, are the test's to choose.

- a data message that comes while the ``read`` of Dawn's connect is unanswered wins over that
  (older) answer, whose other values are taken;
- a Dawn that connects while the broker is away gets device data once it is back (the
  reconnect makes the subscription), and a Dawn that leaves while it is away leaves nothing to
  subscribe again; its values (even those that never change) are read again once the
  connection is back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from runtime.messages import (
    DeviceData,
    DeviceInfo,
    GameState,
    ParamInfo,
    SubscriptionInfo,
    decode,
    encode,
)
from runtime.protocol import make_uid
from runtime.remote import Connection, Handler, rpc
from runtime.service.gateway import Gateway
from runtime.service.gateway.proto import pie_client_pb2 as pb

from tests.gateway.client import DAWN, DEVICE_DATA, GAME_STATE, SHEPHERD, PieClient
from tests.support.brokers import MosquittoTestBroker
from tests.support.wait import wait_for_async

KOALA_ID = 0x42
UID = str(make_uid(13, 1, KOALA_ID))
INFO = DeviceInfo(
    uid=UID, type="KoalaBear", type_id=13, port="pty",
    params=[ParamInfo(name="duty_cycle_a", type="float", readable=True, writeable=True),
            ParamInfo(name="enc_a", type="int32", readable=True, writeable=False)],
    subscription=SubscriptionInfo(params=["duty_cycle_a", "enc_a"], interval_ms=40),
)


class DeviceService(Handler):
    """The device service's ``read``, answering what it had when asked once ``release`` is
    set."""

    service_name = "device"

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values
        self.asked = 0
        self.release = asyncio.Event()
        self.release.set()

    @rpc
    async def read(self, uid: str, params: list[str] | None = None) -> dict[str, Any]:
        self.asked += 1
        answer = dict(self.values)
        await self.release.wait()
        return answer


class Rig:
    def __init__(self, gateway: Gateway, connection: Connection, devices: Connection,
                 service: DeviceService) -> None:
        self.gateway = gateway
        self.connection = connection  # the gateway's
        self.devices = devices  # the device service's
        self.service = service

    async def publish_data(self, **params: Any) -> None:
        await self.devices.publish(self.devices.topics.device_data(UID),
                                   encode(DeviceData(ts=time.time(), params=params)))

    async def dawn(self) -> PieClient:
        return await PieClient.connect("127.0.0.1", self.gateway.port, DAWN)

    def follows(self) -> bool:
        return self.connection.topics.any_device_data in self.connection._subscribers


@asynccontextmanager
async def running(broker: MosquittoTestBroker, robot: str,
                  values: dict[str, Any]) -> AsyncIterator[Rig]:
    async def set_mode(mode: str, **kwargs: Any) -> None:  # no executor here
        pass

    async with Connection(broker.url, robot=robot, service="gateway") as connection, \
            Connection(broker.url, robot=robot, service="device") as devices:
        service = DeviceService(values)
        await service.serve(devices)
        await devices.publish(devices.topics.device_info(UID), encode(INFO), qos=1, retain=True)
        gateway = Gateway("127.0.0.1", 0, set_mode=set_mode)
        await gateway.start(connection)
        try:
            await wait_for_async(lambda: UID in gateway.devices)
            yield Rig(gateway, connection, devices, service)
        finally:
            service.release.set()
            await gateway.stop()


def params(message: pb.DevData) -> dict[str, Any]:
    """The KoalaBear's params with a value, in one DEVICE_DATA."""
    device = next(d for d in message.devices if d.uid == KOALA_ID)
    return {p.name: getattr(p, p.WhichOneof("val")) for p in device.params
            if p.WhichOneof("val") is not None}


async def test_a_data_message_during_the_read_wins_over_its_answer(mosquitto_broker,
                                                                   robot_name) -> None:
    async with running(mosquitto_broker, robot_name,
                       {"duty_cycle_a": 0.25, "enc_a": 7}) as rig:
        rig.service.release.clear()
        dawn = await rig.dawn()
        await wait_for_async(lambda: rig.service.asked)  # sent once subscribed (SUBACK)
        await rig.publish_data(duty_cycle_a=0.75)  # newer than the answer to come
        await dawn.receive_until(DEVICE_DATA, lambda m: params(m) == {"duty_cycle_a": 0.75})
        rig.service.release.set()
        # the first frame with the answer's enc_a (frames sent before it are still queued)
        shown = params(await dawn.receive_until(DEVICE_DATA, lambda m: "enc_a" in params(m)))
        assert shown == {"duty_cycle_a": 0.75, "enc_a": 7}
        await dawn.close()


async def test_device_data_is_followed_across_a_broker_restart(mosquitto_broker,
                                                               robot_name) -> None:
    async with running(mosquitto_broker, robot_name, {"duty_cycle_a": 0.0}) as rig:
        # Dawn connects while the broker is away: subscribed by the reconnect
        await asyncio.to_thread(mosquitto_broker.stop)
        await wait_for_async(lambda: not rig.connection.connected.is_set())
        dawn = await rig.dawn()
        await wait_for_async(rig.follows)
        await asyncio.to_thread(mosquitto_broker.start)
        await rig.connection.wait_connected(20)
        await rig.devices.wait_connected(20)
        await rig.publish_data(duty_cycle_a=0.5)
        await dawn.receive_until(DEVICE_DATA, lambda m: params(m).get("duty_cycle_a") == 0.5)
        # Dawn leaves while the broker is away: nothing is subscribed again, nothing ticks
        await asyncio.to_thread(mosquitto_broker.stop)
        await wait_for_async(lambda: not rig.connection.connected.is_set())
        await dawn.close()
        await wait_for_async(lambda: not rig.follows() and not list(rig.gateway._tasks))
        await asyncio.to_thread(mosquitto_broker.start)
        await rig.connection.wait_connected(20)
        assert rig.connection.topics.any_device_data not in rig.connection._qos
        # and a Dawn after that gets device data again
        await rig.devices.wait_connected(20)
        asked = rig.service.asked
        dawn = await rig.dawn()
        await wait_for_async(lambda: rig.service.asked > asked)  # sent once subscribed
        await rig.publish_data(duty_cycle_a=-0.5)
        await dawn.receive_until(DEVICE_DATA, lambda m: params(m).get("duty_cycle_a") == -0.5)
        await dawn.close()


async def test_a_dawn_that_connects_while_the_broker_is_away_gets_every_value_once_it_is_back(
        mosquitto_broker, robot_name) -> None:
    """The ``read`` of Dawn's connect cannot be answered while the broker is away; values that
    never change (an encoder at rest) would then never show. Once the connection is back, they
    are read again."""
    async with running(mosquitto_broker, robot_name,
                       {"duty_cycle_a": 0.25, "enc_a": 7}) as rig:
        await asyncio.to_thread(mosquitto_broker.stop)
        await wait_for_async(lambda: not rig.connection.connected.is_set())
        dawn = await rig.dawn()
        await wait_for_async(rig.follows)

        def reading() -> bool:
            return any(t.get_name().startswith("gateway read") for t in rig.gateway._tasks)

        await wait_for_async(lambda: not reading(), timeout=20)  # the read gave up
        await asyncio.to_thread(mosquitto_broker.start)
        await rig.connection.wait_connected(20)
        await dawn.receive_until(
            DEVICE_DATA, lambda m: params(m) == {"duty_cycle_a": 0.25, "enc_a": 7}, timeout=20)
        await dawn.close()


async def test_the_game_state_is_retained_again_after_a_broker_restart(mosquitto_broker,
                                                                      robot_name) -> None:
    """Shepherd's game state is retained on ``field/game_state``; a restarted broker has lost
    it, and the gateway's reconnection publishes it again (its one ``on_connected`` hook)."""
    async with running(mosquitto_broker, robot_name, {}) as rig:
        shepherd = await PieClient.connect("127.0.0.1", rig.gateway.port, SHEPHERD)
        await shepherd.send(GAME_STATE, pb.GameState(state=2))  # type: ignore[arg-type]
        await wait_for_async(lambda: rig.gateway._game_state is not None)
        await asyncio.to_thread(mosquitto_broker.stop)
        await wait_for_async(lambda: not rig.connection.connected.is_set())
        await asyncio.to_thread(mosquitto_broker.start)
        await rig.connection.wait_connected(20)
        seen: list[GameState] = []
        async with Connection(mosquitto_broker.url, robot=robot_name) as late:
            await late.subscribe(late.topics.game_state,
                                 lambda topic, payload: seen.append(decode(GameState, payload)))
            await wait_for_async(lambda: seen, timeout=20)
        assert seen[-1].state == "2"
        await shepherd.close()
