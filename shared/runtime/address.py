"""``Address``: where a Smart Device's bytes come from, validated once at construction.

Four kinds, one text form each (what ``--connect``, ``--virtual-listen`` and the logs show):

- ``serial:/dev/ttyACM0``: a serial port (a real device, or the device end of a pty)
- ``pty:/tmp/koala``: a pseudo-terminal a virtual device creates, linked at that path
- ``unix:/run/runtime/virtual.sock``: a unix stream socket
- ``tcp:HOST:PORT``: a TCP socket (``tcp::5000`` means 127.0.0.1; IPv6 as ``tcp:[::1]:5000``)

A bad address is refused where it is typed: ``AddressType`` is the click parameter type (one
line, exit code 2), and ``Address.parse`` raises ``AddressError`` (also a ``ValueError``) naming
the accepted forms. Code past the boundary takes an ``Address`` and never re-parses text.
``runtime.transport`` opens them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import click

from runtime.exception import RuntimeBaseException

Kind = Literal["serial", "pty", "unix", "tcp"]
KINDS: tuple[Kind, ...] = ("serial", "pty", "unix", "tcp")
FORMS = {
    "serial": "serial:PATH",
    "pty": "pty:PATH",
    "unix": "unix:PATH",
    "tcp": "tcp:HOST:PORT",
}
DEFAULT_HOST = "127.0.0.1"


class AddressError(RuntimeBaseException, ValueError):
    """Not a transport address (or not one of the kinds accepted here)."""


@dataclass(frozen=True, slots=True)
class Address:
    """A transport address; ``path`` for serial/pty/unix, ``host`` and ``port`` for tcp."""

    kind: Kind
    path: str = ""
    host: str = ""
    port: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise AddressError(f"unknown address kind {self.kind!r}; use " + _forms(KINDS),
                               kind=str(self.kind))
        if self.kind == "tcp":
            if isinstance(self.port, bool) or not isinstance(self.port, int) \
                    or not 0 <= self.port <= 0xFFFF:
                raise AddressError(f"tcp port {self.port!r} is not a port number (0..65535)",
                                   port=repr(self.port))
            if not self.host or any(c.isspace() for c in self.host):
                raise AddressError(f"tcp host {self.host!r} is empty or has spaces",
                                   host=self.host)
        elif not self.path or "\x00" in self.path:
            raise AddressError(f"{self.kind} address needs a path: {FORMS[self.kind]}",
                               kind=self.kind)

    @classmethod
    def parse(cls, text: object, kinds: Iterable[str] = KINDS) -> Address:
        """An address from its text form; ``kinds`` limits what this place accepts."""
        allowed = tuple(kinds)
        if isinstance(text, Address):
            address = text
        elif not isinstance(text, str):
            raise AddressError(f"{text!r} is not an address: use {_forms(allowed)}",
                               address=repr(text))
        else:
            address = cls._parse_text(text.strip(), allowed)
        if address.kind not in allowed:
            raise AddressError(f"{address} is a {address.kind} address; here use "
                               + _forms(allowed), address=str(address))
        return address

    @classmethod
    def _parse_text(cls, text: str, allowed: tuple[str, ...]) -> Address:
        kind, sep, rest = text.partition(":")
        if not sep or kind not in KINDS:
            raise AddressError(f"{text!r} is not an address: use {_forms(allowed)}",
                               address=text)
        if kind != "tcp":
            return cls(kind, path=rest)  # type: ignore[arg-type]
        host, sep, port = rest.rpartition(":")
        if not sep or not port.isascii() or not port.isdigit():
            raise AddressError(f"{text!r} is not a tcp address: use tcp:HOST:PORT "
                               "(e.g. tcp:127.0.0.1:5000)", address=text)
        host = host.removeprefix("[").removesuffix("]") or DEFAULT_HOST
        return cls("tcp", host=host, port=int(port))

    def __str__(self) -> str:
        if self.kind == "tcp":
            host = f"[{self.host}]" if ":" in self.host else self.host
            return f"tcp:{host}:{self.port}"
        return f"{self.kind}:{self.path}"


def _forms(kinds: Iterable[str]) -> str:
    return " or ".join(FORMS[kind] for kind in kinds if kind in FORMS)


class AddressType(click.ParamType):
    """Click parameter type: a bad address fails at the command line, in one line."""

    name = "address"

    def __init__(self, kinds: Iterable[str] = KINDS) -> None:
        self.kinds = tuple(kinds)

    def get_metavar(self, param: click.Parameter, *args: Any, **kwargs: Any) -> str:
        """``unix:PATH|tcp:HOST:PORT`` in ``--help`` (click 8.2 and later also pass ``ctx``,
        by keyword)."""
        return "|".join(FORMS[kind] for kind in self.kinds)

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Address:
        try:
            return Address.parse(value, self.kinds)
        except AddressError as exc:
            self.fail(exc.message, param, ctx)
