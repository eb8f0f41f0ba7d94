"""MQTT plumbing shared by every service and client: connection, RPC server and client.

- ``Connection``: the process's MQTT connection (reconnects, resubscribes, TCP_NODELAY,
  retained service status with a last will, callbacks that cannot kill the loop).
- ``Handler`` + ``@rpc``: serve ``rpc/<service>/<method>``; ``Client``: call them.
- ``call_sync``: one call from synchronous code (command-line tools).
- ``MQTTLogHandler``: a service's log records on ``log/<service>``.
"""

from runtime.remote.connection import BrokerAddress, Callback, Connection, check_filter
from runtime.remote.logs import MQTTLogHandler
from runtime.remote.rpc import (
    Client,
    Handler,
    call_sync,
    error_line,
    remote_error,
    rpc,
    run_sync,
    signature_text,
)

__all__ = [
    "BrokerAddress",
    "Callback",
    "Client",
    "Connection",
    "Handler",
    "MQTTLogHandler",
    "call_sync",
    "check_filter",
    "error_line",
    "remote_error",
    "rpc",
    "run_sync",
    "signature_text",
]
