"""The browser driver station: a static page the robot serves, speaking MQTT over WebSockets.

The page (``static/``) talks to the MQTT broker directly (CBOR payloads, the same topics and RPC
as every other client); this package only serves its files and a small ``config.json`` that
tells the page the robot name and where MQTT over WebSockets listens. See
docs/driver-station.md.
"""

from runtime.web.server import STATIC, WebConfig, WebServer

__all__ = ["STATIC", "WebConfig", "WebServer"]
