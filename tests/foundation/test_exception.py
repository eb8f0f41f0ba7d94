"""Errors carry a sentence plus context: repr and str show both, to_dict is the RPC error map."""

from __future__ import annotations

import pytest
from runtime import exception
from runtime.exception import (
    CatalogError,
    DeviceError,
    ParameterError,
    ProtocolError,
    RuntimeBaseException,
)


def test_message_and_context_are_kept():
    error = ParameterError(
        "KoalaBear.duty_cycle_a = 2 is out of bounds",
        device="KoalaBear",
        param="duty_cycle_a",
        value=2,
    )
    assert error.message == "KoalaBear.duty_cycle_a = 2 is out of bounds"
    assert error.context == {"device": "KoalaBear", "param": "duty_cycle_a", "value": 2}
    assert error.args == ("KoalaBear.duty_cycle_a = 2 is out of bounds",)


def test_repr_shows_type_message_and_context():
    error = ProtocolError("bad checksum", port="/dev/ttyACM0", expected=0x1D)
    assert repr(error) == "ProtocolError('bad checksum', port='/dev/ttyACM0', expected=29)"
    assert repr(CatalogError("no catalog")) == "CatalogError('no catalog')"


def test_str_appends_context_only_when_there_is_some():
    assert str(DeviceError("gone")) == "gone"
    assert str(DeviceError("gone", uid="123")) == "gone (uid='123')"


def test_to_dict_is_plain_data():
    class Odd:
        def __repr__(self) -> str:
            return "<odd>"

    error = ParameterError(
        "nope",
        allowed=("a", "b"),
        bounds={1: [1.5, None]},
        flags={True},
        obj=Odd(),
        raw=b"\x00",
    )
    assert error.to_dict() == {
        "type": "ParameterError",
        "message": "nope",
        "context": {
            "allowed": ["a", "b"],
            "bounds": {"1": [1.5, None]},
            "flags": [True],
            "obj": "<odd>",
            "raw": "b'\\x00'",
        },
    }


def test_every_error_is_a_runtime_error_and_can_be_raised_and_caught_by_area():
    areas = [
        value
        for value in vars(exception).values()
        if isinstance(value, type) and issubclass(value, RuntimeBaseException)
    ]
    assert len(areas) >= 10
    for cls in areas:
        with pytest.raises(RuntimeBaseException) as info:
            raise cls("what happened", thing=1)
        assert info.value.to_dict()["type"] == cls.__name__
    with pytest.raises(DeviceError):
        raise ParameterError("a parameter error is a device error")
