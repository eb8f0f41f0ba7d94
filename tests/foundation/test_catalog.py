"""The device catalog: what ships matches the reference, lookups, value checks, and a bad catalog
file fails at load with a message naming the file, the device and the param."""

from __future__ import annotations

import math
import textwrap

import pytest
from runtime import protocol
from runtime.catalog import DEFAULT_CATALOG_PATH, default_catalog, integer_range, load_catalog
from runtime.exception import CatalogError, ParameterError

CATALOG = default_catalog()

EXPECTED_TYPES = {
    0: ("LimitSwitch", 3),
    1: ("LineFollower", 3),
    2: ("Potentiometer", 3),
    3: ("Encoder", 1),
    4: ("BatteryBuzzer", 8),
    5: ("TeamFlag", 7),
    7: ("ServoControl", 2),
    10: ("YogiBear", 14),
    11: ("RFID", 2),
    12: ("PolarBear", 14),
    13: ("KoalaBear", 16),
    0xFFFF: ("ExampleDevice", 16),
}


def test_the_shipped_catalog_has_the_twelve_reference_types():
    hibike = [d for d in CATALOG if d.generation == "hibike"]
    assert len(hibike) == 12
    assert {d.id: (d.name, len(d.params)) for d in hibike} == EXPECTED_TYPES
    assert default_catalog() is CATALOG  # loaded once per process
    assert load_catalog(DEFAULT_CATALOG_PATH) == CATALOG


@pytest.mark.parametrize("type_id", sorted(EXPECTED_TYPES))
def test_lookup_by_id_name_and_decimal_string(type_id):
    name = EXPECTED_TYPES[type_id][0]
    device = CATALOG.get(type_id)
    assert device.name == name
    assert CATALOG.get(name) is device
    assert CATALOG.get(name.lower()) is device
    assert CATALOG.get(str(type_id)) is device
    assert type_id in CATALOG and name in CATALOG


def test_unknown_device_types_list_the_known_ones():
    for key in ("Toaster", 6, 99, True, None, 1.0):
        with pytest.raises(CatalogError) as info:
            CATALOG.get(key)  # type: ignore[arg-type]
        assert f"unknown device type {key!r}" in info.value.message
        assert "KoalaBear (13)" in info.value.message
        assert key not in CATALOG


def test_params_by_name_and_index():
    koala = CATALOG.get("KoalaBear")
    assert [p.index for p in koala.params] == list(range(16))
    assert koala.param("enc_b") is koala.param(12)
    assert koala.param(15).name == "drive_mode_b"
    assert koala.param("duty_cycle_a").type == "float"
    for key in ("nope", 16, -1, True):
        with pytest.raises(ParameterError) as info:
            koala.param(key)
        assert f"KoalaBear has no param {key!r}" in info.value.message
        assert "duty_cycle_a, duty_cycle_b" in info.value.message
        assert info.value.context["allowed"][0] == "duty_cycle_a"


def test_bitmaps_and_names():
    koala = CATALOG.get("KoalaBear")
    assert koala.bitmap(["duty_cycle_b", 0]) == 0b11
    assert koala.bitmap(None) == 0xFFFF
    assert koala.names(0b1000000000000001) == ["duty_cycle_a", "drive_mode_b"]
    assert koala.names(0xFFFF0003) == ["duty_cycle_a", "duty_cycle_b"]  # bits beyond ignored
    assert koala.value_struct(0b11).format == "<ff"
    assert koala.value_struct(0b11) is koala.value_struct(0b11)
    assert CATALOG.get("ExampleDevice").value_struct(0xFFFF).size == 1 + 1 + 1 + 2 + 2 + 4 + 4 + (
        8 + 8 + 4 + 4 + 1 + 2 + 4 + 8 + 4
    )


def test_flags_and_subscribed_bitmaps_match_the_reference():
    yogi = CATALOG.get("YogiBear")
    assert yogi.subscribed_bitmap == 1 << 0 | 1 << 10 | 1 << 11
    assert yogi.readable_bitmap == 1 << 0 | 1 << 10 | 1 << 11 | 1 << 12 | 1 << 13
    assert yogi.writeable_bitmap == 0x3FFF & ~(1 << 11 | 1 << 12)
    assert [p.name for p in yogi.motor_params] == ["duty_cycle"]
    koala = CATALOG.get("KoalaBear")
    assert koala.names(koala.subscribed_bitmap) == [
        "duty_cycle_a",
        "duty_cycle_b",
        "enc_a",
        "enc_b",
    ]
    assert koala.readable_bitmap == koala.writeable_bitmap == 0xFFFF
    assert [p.name for p in koala.motor_params] == ["duty_cycle_a", "duty_cycle_b"]
    assert CATALOG.get("LimitSwitch").subscribed_bitmap == 0b111
    assert CATALOG.get("LimitSwitch").writeable_bitmap == 0
    assert CATALOG.get("Encoder").subscribed_bitmap == 0
    example = CATALOG.get("ExampleDevice")
    assert example.names(example.readable_bitmap & ~example.writeable_bitmap) == [
        "shuichi",
        "riko",
        "noboru",
    ]
    assert example.names(example.writeable_bitmap & ~example.readable_bitmap) == ["takuya", "aoi"]


def test_bounds_match_the_reference():
    servo = CATALOG.get("ServoControl").param("servo0")
    assert (servo.lower, servo.upper) == (-1.0, 1.0)
    thresh = CATALOG.get("PolarBear").param("current_thresh")
    assert (thresh.lower, thresh.upper) == (2.0, 10.0)
    assert CATALOG.get("KoalaBear").param("pid_kp_a").lower == 0.0
    assert CATALOG.get("KoalaBear").param("pid_kp_a").upper is None
    assert CATALOG.get("LineFollower").param("center").allowed() == "a number from 0 to 1"
    assert CATALOG.get("Encoder").param("rotation").allowed() == (
        "a whole number (int16) from -32768 to 32767"
    )
    assert CATALOG.get("KoalaBear").param("pid_kp_a").allowed() == "a number >= 0"
    assert CATALOG.get("YogiBear").param("deadband").allowed() == "a number"
    assert integer_range("uint64") == (0, (1 << 64) - 1)
    assert integer_range("int8") == (-128, 127)
    assert integer_range("float") is None


def test_check_value_accepts_and_normalises():
    koala = CATALOG.get("KoalaBear")
    assert koala.param("duty_cycle_a").check_value(1) == 1.0
    assert isinstance(koala.param("duty_cycle_a").check_value(1), float)
    assert koala.param("drive_mode_a").check_value(3.0) == 3
    assert isinstance(koala.param("drive_mode_a").check_value(3.0), int)
    assert koala.param("motor_enabled_a").check_value(False) is False


@pytest.mark.parametrize(
    ("device", "param", "value", "message"),
    [
        (
            "KoalaBear",
            "duty_cycle_a",
            True,
            "KoalaBear.duty_cycle_a takes a number from -1 to 1, not bool",
        ),
        ("KoalaBear", "duty_cycle_a", "fast", "not str"),
        (
            "KoalaBear",
            "duty_cycle_a",
            1.5,
            "KoalaBear.duty_cycle_a = 1.5 is out of bounds: it takes a number from -1 to 1",
        ),
        ("KoalaBear", "duty_cycle_a", math.nan, "not nan"),
        ("YogiBear", "deadband", 1e39, "not 1e+39"),
        (
            "KoalaBear",
            "motor_enabled_a",
            1,
            "KoalaBear.motor_enabled_a takes True or False, not int",
        ),
        ("KoalaBear", "drive_mode_a", 2.5, "takes a whole number (uint8) from 0 to 255, not 2.5"),
        ("KoalaBear", "drive_mode_a", 256, "drive_mode_a = 256 is out of bounds"),
        ("KoalaBear", "pid_kp_a", -0.5, "pid_kp_a = -0.5 is out of bounds: it takes a number >= 0"),
        ("PolarBear", "current_thresh", 1, "takes a number from 2 to 10"),
        ("ExampleDevice", "yuko", 1 << 63, "a whole number (int64) from -9223372036854775808"),
    ],
)
def test_check_value_refusals_name_device_param_and_what_is_allowed(device, param, value, message):
    p = CATALOG.get(device).param(param)
    with pytest.raises(ParameterError) as info:
        p.check_value(value, device)
    assert message in info.value.message
    context = info.value.context
    assert context["device"] == device and context["param"] == param
    assert context["allowed"] == p.allowed()


def test_writing_a_param_that_is_not_writeable_names_device_param_and_allowed():
    with pytest.raises(ParameterError) as info:
        protocol.device_write(CATALOG.get("ExampleDevice"), {"riko": 1})
    assert info.value.context["device"] == "ExampleDevice"
    assert info.value.context["param"] == "riko"
    assert "takuya" in info.value.context["allowed"]
    assert "riko" not in info.value.context["allowed"]


# -- bad catalog files ------------------------------------------------------------------------


def _device(name: str, type_id: int, params: str = "") -> str:
    return f'[[device]]\nid = {type_id}\nname = "{name}"\nparams = [{params}]\n'


BAD_CATALOGS = [
    (
        "duplicate id",
        _device("Alpha", 1) + _device("Beta", 1),
        ["device type id 1 is used by both Alpha and Beta"],
    ),
    (
        "duplicate name",
        _device("Alpha", 1) + _device("Alpha", 2),
        ["device name 'Alpha' is defined twice"],
    ),
    (
        "more than 16 params",
        _device("Big", 3, ", ".join(f'{{name = "p{i}", type = "bool"}}' for i in range(17))),
        ["device 'Big'", "has 17 params; a device type takes at most 16"],
    ),
    (
        "bad type",
        _device("Alpha", 1, '{name = "ok", type = "bool"}, {name = "x", type = "double"}'),
        ["device 'Alpha'", "param 'x'", "field type", "'uint8'"],
    ),
    (
        "bounds on bool",
        _device("Flag", 5, '{name = "flag", type = "bool", lower = 0.0}'),
        ["device 'Flag'", "param 'flag'", "bounds are only allowed on numeric params"],
    ),
    (
        "duplicate param",
        _device("Alpha", 1, '{name = "x", type = "bool"}, {name = "x", type = "uint8"}'),
        ["device 'Alpha'", "param 'x' is defined twice"],
    ),
    (
        "lower above upper",
        _device("Alpha", 1, '{name = "x", type = "float", lower = 2.0, upper = 1.0}'),
        ["device 'Alpha'", "param 'x'", "lower bound 2.0 is above upper bound 1.0"],
    ),
    (
        "subscribed not readable",
        _device("Alpha", 1, '{name = "x", type = "float", subscribed = true}'),
        ["param 'x'", "subscribed by default must be readable"],
    ),
    (
        "motor not writeable",
        _device("Alpha", 1, '{name = "m", type = "float", readable = true, motor = true}'),
        ["param 'm'", "a motor param must be writeable"],
    ),
    (
        "unknown field",
        _device("Alpha", 1, '{name = "x", type = "float", colour = 1}'),
        ["param 'x'", "field colour"],
    ),
    ("id too big", _device("Alpha", 70000), ["device 'Alpha'", "field id", "65535"]),
]


@pytest.mark.parametrize(
    ("case", "text", "expected"), BAD_CATALOGS, ids=[c[0] for c in BAD_CATALOGS]
)
def test_a_bad_catalog_names_the_file_device_and_param(tmp_path, case, text, expected):
    path = tmp_path / "catalog.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CatalogError) as info:
        load_catalog(path)
    message = info.value.message
    assert f"invalid device catalog {path}" in message
    assert info.value.context["file"] == str(path)
    for part in expected:
        assert part in message


def test_unreadable_or_invalid_toml_names_the_file(tmp_path):
    with pytest.raises(CatalogError, match=r"cannot read device catalog .*missing\.toml"):
        load_catalog(tmp_path / "missing.toml")
    path = tmp_path / "broken.toml"
    path.write_text("[[device]\n", encoding="utf-8")
    with pytest.raises(CatalogError) as info:
        load_catalog(path)
    assert f"device catalog {path} is not valid TOML" in info.value.message


def test_a_small_valid_catalog_loads(tmp_path):
    path = tmp_path / "catalog.toml"
    path.write_text(
        textwrap.dedent("""\
        [[device]]
        id = 42
        name = "Dial"
        params = [
          { name = "angle", type = "int16", readable = true, subscribed = true, lower = -90 },
          { name = "lamp", type = "bool", writeable = true },
        ]
        """),
        encoding="utf-8",
    )
    catalog = load_catalog(path)
    dial = catalog.get("dial")
    assert dial.id == 42
    assert dial.param("lamp").index == 1
    assert dial.subscribed_bitmap == 1
    assert dial.param("angle").allowed() == "a whole number (int16) from -90 to 32767"
