"""Service logs on ``log/<source>`` through ``MQTTLogHandler``, from any thread."""

from __future__ import annotations

import asyncio
import logging
import threading

from runtime.messages import LogRecord, decode
from runtime.remote import Connection, MQTTLogHandler

from tests.support.wait import wait_for_async


async def test_records_from_any_thread_reach_the_log_topic(mqtt_broker, robot_name):
    async with Connection(mqtt_broker.url, robot=robot_name, service="svc") as service, \
            Connection(mqtt_broker.url, robot=robot_name) as client:
        received: list[LogRecord] = []
        await client.subscribe(client.topics.log("svc"),
                               lambda topic, payload: received.append(decode(LogRecord, payload)))
        handler = MQTTLogHandler(service, "svc").install()
        logger = logging.getLogger("runtime.test.logs")
        logger.setLevel(logging.INFO)  # as a service's logging config has it
        try:
            logger.info("ready with %d devices", 3)
            worker = threading.Thread(target=lambda: logger.warning("from a thread"))
            worker.start()
            await asyncio.to_thread(worker.join)
            logger.debug("below the level: not sent")
            logging.getLogger("runtime.remote.connection").warning("about MQTT: not sent")
            try:
                raise ValueError("bad value")
            except ValueError:
                logger.exception("it failed")
            await wait_for_async(lambda: len(received) >= 3)
        finally:
            handler.uninstall()
    messages = [(r.level, r.logger, r.message) for r in received]
    assert ("INFO", "runtime.test.logs", "ready with 3 devices") in messages
    assert ("WARNING", "runtime.test.logs", "from a thread") in messages
    assert ("ERROR", "runtime.test.logs", "it failed: ValueError: bad value") in messages
    assert len(received) == 3


async def test_a_flood_is_capped_and_counted(amqtt_broker, robot_name):
    async with Connection(amqtt_broker.url, robot=robot_name, service="svc") as service:
        handler = MQTTLogHandler(service, "svc", backlog=5)
        logger = logging.getLogger("runtime.test.flood")
        logger.addHandler(handler)
        logger.propagate = False
        try:
            for index in range(50):  # all in one loop iteration: nothing is sent in between
                logger.warning("line %d", index)
            assert len(handler.queue) == 5 and handler.dropped == 45
        finally:
            logger.removeHandler(handler)
            logger.propagate = True
