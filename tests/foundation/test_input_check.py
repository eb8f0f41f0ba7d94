"""The broker service's hand check of driver input agrees with the pydantic models.

``gamepad_input`` / ``keyboard_input`` (no pydantic on the way of good input) must accept exactly
what ``decode(GamepadInput | KeyboardInput, ...)`` accepts, give the same values, and refuse the
rest with the model's own message: hypothesis throws near-misses of every field at both.
"""

from __future__ import annotations

import math
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from runtime.exception import MessageError
from runtime.messages import (
    GamepadInput,
    KeyboardInput,
    _gamepad_fields,
    _keyboard_fields,
    decode,
    gamepad_input,
    keyboard_input,
)

# Numbers around every boundary the models have, of every CBOR number type (and bools).
edges = st.sampled_from([
    -1, 0, 1, 2, -1.0, 0.0, 1.0, -0.0, 1.0000001, -1.0000001, 0.5, 1 << 17, (1 << 17) - 1,
    1 << 64, (1 << 64) - 1, -(1 << 64), 10 ** 400, float("nan"), float("inf"), -float("inf"),
    True, False,
])
numbers = st.one_of(edges, st.integers(), st.floats(), st.floats(-1.5, 1.5), st.booleans())
anything = st.one_of(numbers, st.none(), st.text(max_size=3), st.binary(max_size=3))
field = st.one_of(numbers, anything, st.lists(numbers, max_size=5))
good_axes = st.lists(st.one_of(st.floats(-1, 1), st.integers(-1, 1)), min_size=4, max_size=4)
good_ts = st.one_of(st.floats(), st.integers(-(1 << 70), 1 << 70))
axis_misses = st.sampled_from([1, -1, 1.0, -1.0, 1.5, -1.0000001, True, float("nan")])
axes = st.one_of(
    st.builds(lambda good, index, miss: [*good[:index], miss, *good[index + 1:]],
              good_axes, st.integers(0, 3), axis_misses),
    st.lists(st.one_of(st.floats(-1, 1), numbers), min_size=3, max_size=5),
    field,
)


@st.composite
def payloads(draw: st.DrawFn, valid: dict[str, st.SearchStrategy[Any]],
             wrong: dict[str, st.SearchStrategy[Any]]) -> Any:
    """Mostly good maps with now and then one or more fields wrong or missing, unknown keys
    added; sometimes not a map at all."""
    if draw(st.integers(0, 19)) == 0:
        return draw(st.one_of(anything, st.lists(anything, max_size=3)))
    value: dict[Any, Any] = draw(st.dictionaries(st.text(max_size=4), anything, max_size=2))
    for name, good in valid.items():
        pick = draw(st.integers(0, 9))
        if pick == 0:
            continue  # missing
        value[name] = draw(wrong[name] if pick <= 3 else good)
    return value


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def outcome(func: Any, data: bytes) -> tuple[str, Any]:
    try:
        return "ok", func(data)
    except MessageError as exc:
        return "error", exc.message


def model_gamepad(data: bytes) -> tuple[int, list[float], float]:
    message = decode(GamepadInput, data)
    return message.buttons, list(message.axes), message.ts


def model_keyboard(data: bytes) -> tuple[int, float]:
    message = decode(KeyboardInput, data)
    return message.keys, message.ts


@settings(max_examples=1500, deadline=None)
@given(payloads(
    {"buttons": st.integers(0, (1 << 17) - 1), "axes": good_axes, "ts": good_ts},
    {"buttons": st.one_of(st.sampled_from([-1, 1 << 17, (1 << 17) - 1, True, 1.0]), numbers,
                          field), "axes": axes, "ts": field},
))
def test_gamepad_check_agrees_with_the_model(value: Any) -> None:
    data = cbor2.dumps(value)
    hand, model = outcome(gamepad_input, data), outcome(model_gamepad, data)
    assert hand[0] == model[0], (value, hand, model)
    assert same(hand[1], model[1]) if hand[0] == "ok" else hand[1] == model[1]
    # and good input never needs the model: the hand check alone accepts it
    assert (_gamepad_fields(cbor2.loads(data)) is not None) == (model[0] == "ok")


@settings(max_examples=800, deadline=None)
@given(payloads(
    {"keys": st.integers(0, (1 << 64) - 1), "ts": good_ts},
    {"keys": st.one_of(st.sampled_from([-1, 1 << 64, (1 << 64) - 1, True, 1.0]), numbers,
                       field), "ts": field},
))
def test_keyboard_check_agrees_with_the_model(value: Any) -> None:
    data = cbor2.dumps(value)
    hand, model = outcome(keyboard_input, data), outcome(model_keyboard, data)
    assert hand[0] == model[0], (value, hand, model)
    assert same(hand[1], model[1]) if hand[0] == "ok" else hand[1] == model[1]
    assert (_keyboard_fields(cbor2.loads(data)) is not None) == (model[0] == "ok")


@pytest.mark.parametrize("data", [b"", b"\xff", cbor2.dumps({"buttons": 0}) + b"\x00"])
def test_bad_cbor_is_refused_with_the_same_sentence(data: bytes) -> None:
    assert outcome(gamepad_input, data) == outcome(model_gamepad, data)
    assert outcome(gamepad_input, data)[0] == "error"


def test_a_good_gamepad_message() -> None:
    data = cbor2.dumps({"buttons": 5, "axes": [0, -1, 1, 0.25], "ts": 12, "new": "ignored"})
    assert gamepad_input(data) == (5, [0.0, -1.0, 1.0, 0.25], 12.0)
    assert [type(axis) for axis in gamepad_input(data)[1]] == [float] * 4
