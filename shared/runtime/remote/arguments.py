"""RPC arguments checked against the method's signature before any handler code runs.

A request's arguments come from CBOR: anything a client sent. ``Signature.bind`` checks their
count and names; :class:`ArgumentValidator` checks their *types*, from the annotations, with
pydantic in strict mode (no ``"2"`` for a float, no ``"duty_cycle_a"`` for a ``list[str]``, no
``True`` for an int; an int is accepted for a float). A mismatch is an ``RPCError`` naming the
argument, the expected type and what was sent, so ``ok: false`` teaches the caller and the
handler never sees the value. Unannotated and ``Any`` parameters are passed as they are.

Why not ``pydantic.validate_call`` on the method itself: it would also check direct Python
calls (tests, other services' code) and turn a wrong count into its own error text; checking at
the wire boundary keeps handlers plain methods and the errors in Runtime's words. Annotate
sequences as ``list[...]``: CBOR has no tuples, and strict mode takes a tuple only as a tuple.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any

from pydantic import ConfigDict, TypeAdapter, ValidationError

from runtime.exception import RPCError

ARBITRARY = ConfigDict(arbitrary_types_allowed=True)
SHOWN = 60  # characters of a bad value quoted in the error


def type_text(annotation: Any) -> str:
    """``list[str] | None`` rather than ``typing.Optional[typing.List[str]]``."""
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    return str(annotation).replace("typing.", "").replace("NoneType", "None")


def value_text(value: Any) -> str:
    """``str 'duty_cycle_a'``: the type a client sent, and the value (cut short)."""
    shown = repr(value)
    if len(shown) > SHOWN:
        shown = shown[:SHOWN - 3] + "..."
    return f"{type(value).__name__} {shown}"


class ArgumentValidator:
    """Strict type checks for one method's parameters (built once per method)."""

    def __init__(self, where: str, method: Callable[..., Any]) -> None:
        self.where = where
        self.signature = inspect.signature(method)
        try:
            hints = typing.get_type_hints(method)
        except Exception:  # an annotation that cannot be resolved: check nothing rather than fail
            hints = {}
        self.adapters: dict[str, tuple[TypeAdapter[Any], Any]] = {}
        for name in self.signature.parameters:
            hint = hints.get(name, Any)
            if hint is Any:
                continue
            try:
                adapter: TypeAdapter[Any] = TypeAdapter(hint)
            except Exception:  # a type pydantic cannot describe: fall back on isinstance
                adapter = TypeAdapter(hint, config=ARBITRARY)
            self.adapters[name] = (adapter, hint)

    def check(self, bound: inspect.BoundArguments) -> None:
        """Validate ``bound`` in place (values replaced by their validated form)."""
        for name, value in list(bound.arguments.items()):
            entry = self.adapters.get(name)
            if entry is None:
                continue
            adapter, hint = entry
            kind = self.signature.parameters[name].kind
            if kind is inspect.Parameter.VAR_POSITIONAL:
                bound.arguments[name] = tuple(
                    self._one(f"{name}[{i}]", adapter, hint, item) for i, item in enumerate(value)
                )
            elif kind is inspect.Parameter.VAR_KEYWORD:
                bound.arguments[name] = {
                    key: self._one(key, adapter, hint, item) for key, item in value.items()
                }
            else:
                bound.arguments[name] = self._one(name, adapter, hint, value)

    def _one(self, name: str, adapter: TypeAdapter[Any], hint: Any, value: Any) -> Any:
        try:
            return adapter.validate_python(value, strict=True)
        except ValidationError as exc:
            first = exc.errors()[0]
            inner = "".join(f"[{part!r}]" for part in first["loc"] if part != name)
            detail = f" ({name}{inner}: {first['msg'].lower()})" if inner else ""
            raise RPCError(
                f"wrong type for {self.where}: argument {name!r} expects {type_text(hint)}, "
                f"got {value_text(value)}{detail}",
                argument=name, expected=type_text(hint), got=type(value).__name__,
            ) from None
