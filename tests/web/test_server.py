"""The page's HTTP side: files, ``config.json``, the sample, and ports that are taken."""

from __future__ import annotations

import json
import queue
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import paho.mqtt.client as paho
import pytest
from runtime.exception import MQTTConnectionError
from runtime.mqtt_server import EmbeddedBrokerThread, free_port
from runtime.web import WebConfig, WebServer
from runtime.web.server import SAMPLE
from runtime.web.station import DriverStation


def get(url: str) -> tuple[str, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.headers["Content-Type"], response.read()


def test_the_page_its_modules_and_config_are_served():
    with WebServer("127.0.0.1", 0, WebConfig(robot="koala", ws_port=9123)) as server:
        kind, body = get(server.url.replace("localhost", "127.0.0.1"))
        assert kind.startswith("text/html") and b'src="app.js"' in body
        for module in ("app.js", "link.js", "drive.js", "watch.js", "program.js",
                       "vendor/vendor.js"):
            kind, _ = get(f"http://127.0.0.1:{server.port}/{module}")
            assert kind == "text/javascript", module  # ES modules need a JavaScript type
        kind, body = get(f"http://127.0.0.1:{server.port}/config.json?x=1")
        assert kind == "application/json"
        assert json.loads(body) == {"robot": "koala", "ws_port": 9123, "ws_url": None,
                                    "version": WebConfig().version,
                                    "rpc_as_login": WebConfig().rpc_as_login}
        assert get(f"http://127.0.0.1:{server.port}/sample.py")[1] == SAMPLE.read_bytes()
        with pytest.raises(urllib.error.HTTPError) as missing:
            get(f"http://127.0.0.1:{server.port}/../../pyproject.toml")
        assert missing.value.code == 404


def test_a_taken_port_is_one_clear_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(MQTTConnectionError, match=f"cannot be served on 127.0.0.1:{port}"):
            WebServer("127.0.0.1", port)
        station = DriverStation(web=("127.0.0.1", free_port()), ws_port=port)
        assert station.broker_ws_port("127.0.0.1") is None  # the robot runs on without a page
        assert "port" in station.summary() and "--ws-port" in station.summary()


def test_the_embedded_broker_speaks_mqtt_over_websockets():
    """A paho client over WebSockets (the page's transport) subscribes, publishes, receives."""
    ws_port = free_port()
    subscribed = threading.Event()
    received: queue.Queue[bytes] = queue.Queue()
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, transport="websockets")
    client.ws_set_options(path="/mqtt")
    client.on_connect = lambda c, *_: c.subscribe("runtime/t/match", qos=1)
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = lambda _c, _u, message: received.put(message.payload)
    with EmbeddedBrokerThread(ws_port=ws_port):
        client.connect("127.0.0.1", ws_port)
        client.loop_start()
        try:
            assert subscribed.wait(10), "no SUBACK over WebSockets"
            client.publish("runtime/t/match", b"hello", qos=1)
            assert received.get(timeout=10) == b"hello"
        finally:
            client.disconnect()
            client.loop_stop()


def test_runtime_web_serves_until_stopped():
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "runtime", "web", "--listen",
                                f"127.0.0.1:{port}", "--robot", "koala", "--ws-url",
                                "ws://robot.local:9001/"],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        assert "driver station for robot 'koala'" in process.stdout.readline()
        config = json.loads(get(f"http://127.0.0.1:{port}/config.json")[1])
        assert config["ws_url"] == "ws://robot.local:9001/"
    finally:
        process.terminate()
        assert process.wait(10) == 0
