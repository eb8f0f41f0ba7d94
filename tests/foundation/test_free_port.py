"""``free_port``: ports for test and bench brokers that an outage cannot lose.

A broker stopped and started again on its port (the outage tests) used to find it taken now
and then (CI: "broker ... exited while starting"): ``free_port`` handed out ports of the
kernel's ephemeral range, which any outgoing connection may take meanwhile, among them the
broker's own clients retrying to reach it. Ports below that range are taken only by listeners.
"""

from __future__ import annotations

import socket
from pathlib import Path

from runtime.mqtt_server import FREE_PORT_LOW, free_port


def test_free_ports_are_bindable_and_below_the_ephemeral_range():
    ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = [free_port() for _ in range(50)]
    assert all(FREE_PORT_LOW <= port < ephemeral_low for port in ports), ports
    assert len(set(ports)) > 1  # picked at random: parallel tests do not all get one port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports[0]))  # free when handed out

