"""The gateway service: PiE's Dawn and Shepherd on TCP 8101, through the MQTT contract."""

from runtime.service.gateway.app import main
from runtime.service.gateway.gateway import Gateway

__all__ = ["Gateway", "main"]
