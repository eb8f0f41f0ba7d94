"""Seeded fuzz payloads for the topics Runtime's services subscribe to.

Random bytes, empty and huge payloads, valid CBOR of the wrong shape, and near-valid messages
(the right keys holding the wrong types). RPC requests carry a usable ``id`` and ``reply_to``
with arguments that can never be valid for the method (a wrong count, or a first argument of a
type no RPC parameter takes), so every one of them must be answered ``ok: false``.
"""

from __future__ import annotations

import random
from typing import Any

import cbor2

HUGE = 256 * 1024


def scalar(rng: random.Random) -> Any:
    return rng.choice([
        rng.randint(-2**40, 2**40), rng.random() * 1e6, float("nan"), float("inf"), True,
        None, "", "x" * rng.randint(1, 300), bytes(rng.randbytes(rng.randint(0, 20))),
        -1, 2**64, "\uff11\uff12", " 12",
    ])


def value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.random()
    if depth < 3 and kind < 0.2:
        return [value(rng, depth + 1) for _ in range(rng.randint(0, 5))]
    if depth < 3 and kind < 0.4:
        return {str(scalar(rng))[:20]: value(rng, depth + 1) for _ in range(rng.randint(0, 5))}
    return scalar(rng)


def junk(rng: random.Random) -> bytes:
    """Anything but a well-formed message."""
    roll = rng.random()
    if roll < 0.25:
        return rng.randbytes(rng.randint(1, 64))
    if roll < 0.30:
        return b""
    if roll < 0.31:
        return rng.randbytes(HUGE)
    if roll < 0.60:
        return cbor2.dumps(value(rng))
    # near-valid: the keys of real messages, the wrong types in them
    keys = ["buttons", "axes", "ts", "keys", "state", "version", "pid", "started", "mode",
            "alliance", "start_pos", "since", "uid", "type", "params", "subscription"]
    return cbor2.dumps({key: value(rng) for key in rng.sample(keys, rng.randint(1, 6))})


def bad_arguments(rng: random.Random) -> tuple[list[Any], dict[str, Any]]:
    """Arguments no RPC method accepts: too many, or a first one of a type none takes."""
    if rng.random() < 0.5:
        return [rng.randint(0, 9)] * rng.randint(4, 8), {}  # more than any method has
    first = rng.choice([rng.randint(-5, 2**40), rng.random(), [rng.randint(0, 9)],
                        rng.randbytes(3), True])
    return [first, *[value(rng) for _ in range(rng.randint(0, 2))]], {}


def rpc_request(rng: random.Random, request_id: str, reply_to: str) -> bytes:
    args, kwargs = bad_arguments(rng)
    return cbor2.dumps({"id": request_id, "reply_to": reply_to, "args": args, "kwargs": kwargs})
