"""Errors that Runtime raises, one subclass per area.

Every error carries a human sentence (``message``) plus structured ``context`` (device, param,
allowed values...) so that a log line, an RPC error reply and a student's traceback all say what
happened, to what, and what is allowed. ``to_dict`` is the form an RPC error reply carries.
"""

from __future__ import annotations

from typing import Any


class RuntimeBaseException(Exception):
    """Base of every Runtime error: ``RuntimeBaseException(message, /, **context)``."""

    def __init__(self, message: str, /, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = context

    def __str__(self) -> str:
        if not self.context:
            return self.message
        details = ", ".join(f"{key}={value!r}" for key, value in self.context.items())
        return f"{self.message} ({details})"

    def __repr__(self) -> str:
        args = [repr(self.message), *(f"{key}={value!r}" for key, value in self.context.items())]
        return f"{type(self).__name__}({', '.join(args)})"

    def to_dict(self) -> dict[str, Any]:
        """The ``error`` map of an RPC reply: ``{type, message, context}``."""
        return {
            "type": type(self).__name__,
            "message": self.message,
            "context": {key: _plain(value) for key, value in self.context.items()},
        }


def _plain(value: Any) -> Any:
    """Context values that CBOR can carry as they are; anything else as its repr."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return repr(value)


class CatalogError(RuntimeBaseException):
    """The device catalog file is invalid (names the file, device and param)."""


class ProtocolError(RuntimeBaseException):
    """A Smart Device packet cannot be encoded or decoded."""


class DeviceError(RuntimeBaseException):
    """A device, or one of its parameters, refused what was asked of it."""


class ParameterError(DeviceError):
    """Unknown parameter, wrong type, out-of-bounds value, or a read/write it does not allow."""


class BufferStoreError(RuntimeBaseException):
    """A shared-memory parameter buffer is missing, closed or unusable."""


class MessageError(RuntimeBaseException):
    """An MQTT payload is not valid CBOR or does not match its schema."""


class RPCError(RuntimeBaseException):
    """A remote call failed: the remote side's error, a timeout, or a bad request."""


class ExecutionError(RuntimeBaseException):
    """Student code failed: an exception, a timeout, or a misuse of the student API."""


class ExecutionTimeout(ExecutionError):
    """Student code ran past its time limit and was interrupted."""


class OptionError(RuntimeBaseException):
    """An unknown option or a value the option does not allow."""


class MQTTConnectionError(RuntimeBaseException):
    """The MQTT broker refused us or cannot be reached."""
