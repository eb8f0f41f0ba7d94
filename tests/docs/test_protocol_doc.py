"""docs/protocol.md is true to the codec: every worked frame is what ``runtime.protocol`` builds,
decodes back to its message, and the message table and input bit orders match the code."""

from __future__ import annotations

import pytest
from runtime import protocol
from runtime.catalog import default_catalog
from runtime.cli.drive import GAMEPAD_BUTTONS, KEYBOARD_KEYS
from runtime.protocol import MessageType, StreamDecoder

from tests.docs.markdown import code, section, table_rows

PAGE = "protocol.md"


def _frames() -> list[list[str]]:
    return table_rows(section(PAGE, "Worked frames"))


@pytest.mark.parametrize("row", _frames(), ids=lambda row: row[0])
def test_each_worked_frame_is_what_the_codec_builds(row):
    _, call, wire = row
    built = eval(code(call), {"protocol": protocol, "catalog": default_catalog()})
    assert built.hex(" ") == code(wire)
    decoder = StreamDecoder()
    assert len(decoder.feed(built)) == 1 and decoder.bad_frames == 0


def test_message_table_matches_the_message_ids():
    rows = table_rows(section(PAGE, "Messages"))
    documented = {int(row[0], 16): row[1] for row in rows}
    in_code = {int(kind): kind.name.replace("_", "").lower() for kind in MessageType}
    assert {kind: name.lower() for kind, name in documented.items()} == in_code


def test_limits_on_the_page_are_the_codec_limits():
    text = section(PAGE, "Framing")
    assert f"at most {protocol.MAX_PAYLOAD_TO_DEVICE} bytes" in text
    assert f"at most {protocol.MAX_PAYLOAD_FROM_DEVICE} bytes" in text


def test_input_bit_orders_are_the_drivers():
    text = " ".join(section(PAGE, "Driver-station inputs (not serial devices)").split())
    assert ", ".join(GAMEPAD_BUTTONS) in text
    assert len(GAMEPAD_BUTTONS) == 17 and len(KEYBOARD_KEYS) == 47
    punctuation = " ".join(f"`{key}`" for key in KEYBOARD_KEYS[36:43])
    assert punctuation in text
    assert ", ".join(KEYBOARD_KEYS[43:]) in text
