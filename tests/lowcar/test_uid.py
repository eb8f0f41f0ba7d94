"""One uid type, one parser: every place that takes a uid gives the same answer to the same
probe (issue 15's "0012", " 12", fullwidth digits, 2**88), for both generations."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from runtime.aliases import check_uid as alias_uid
from runtime.api import DeviceDirectory
from runtime.buffer import BufferStore
from runtime.buffer.store import _uid_key
from runtime.catalog import default_catalog
from runtime.exception import RuntimeBaseException
from runtime.protocol.uid import Generation, Uid, UidError, parse_short
from runtime.topics import Topics
from runtime.topics import check_uid as topic_uid
from runtime.virtual import make_virtual_uid

CATALOG = default_catalog()
HIBIKE_KOALA = CATALOG.get("KoalaBear")


def answers(probe: object) -> dict[str, str]:
    """What each uid-taking place makes of ``probe``: its canonical uid, or "error"."""
    places = {
        "Uid.parse": lambda: str(Uid.parse(probe)),
        "topics.check_uid": lambda: topic_uid(probe),
        "Topics.device_info": lambda: Topics("r").device_info(probe).split("/")[-2],
        "aliases.check_uid": lambda: alias_uid(probe),
        "BufferStore uid key": lambda: str(_uid_key(probe)),  # type: ignore[arg-type]
        "virtual uid": lambda: str(make_virtual_uid(HIBIKE_KOALA, probe)),  # type: ignore
    }
    if isinstance(probe, str):  # students name devices by strings only
        places["student API"] = lambda: DeviceDirectory(BufferStore("uidprobe"))._uid_of(probe)
    found = {}
    for name, place in places.items():
        try:
            found[name] = place()
        except (RuntimeBaseException, ValueError):
            found[name] = "error"
    return found


@pytest.mark.parametrize(("probe", "expected"), [
    ("0012", "12"), (" 12", "12"), (12, "12"), ("12\n", "12"),
    ("\uff11\uff12", "error"), (2**88, "error"), (str(2**88), "error"), (-1, "error"),
    ("-1", "error"), ("1_2", "error"), ("", "error"), (True, "error"), (1.0, "error"),
    ("0x12", "error"), ("1 2", "error"),
])
def test_every_place_gives_the_same_answer(probe, expected):
    found = answers(probe)
    if expected == "12":  # a bare id: the virtual device makes it a full KoalaBear uid
        assert found.pop("virtual uid") == str(HIBIKE_KOALA.make_uid(12))
    assert set(found.values()) == {expected}, found


def test_a_full_uid_is_the_same_everywhere_for_both_generations():
    for uid in (Uid.hibike(13, 1, 42), Uid.lowcar(6, 1, 4660)):
        device_type = CATALOG.for_uid(uid)
        text = f"  0{uid}"
        found = answers(text)
        found.pop("virtual uid")
        assert set(found.values()) == {str(uid)}
        assert make_virtual_uid(device_type, text) == uid.value


def test_lowcar_uids_have_one_canonical_form_and_say_their_generation():
    uid = Uid.lowcar(6, 1, 4660)
    assert uid.generation is Generation.LOWCAR and uid.type_id == 6 and uid.year == 1
    assert uid.id == 4660 and uid.short == "6_4660" and uid.type_field == 0x106
    assert Uid.parse(str(uid)) == uid and Uid.parse(int(uid)) == uid
    assert CATALOG.for_uid(uid).qualified_name == "lowcar.KoalaBear"
    assert CATALOG.for_uid(Uid.hibike(13, 1, 4660)).qualified_name == "KoalaBear"
    assert Uid.hibike(6, 1, 4660) != uid  # same numbers, other generation, other uid
    assert parse_short("6_4660") == (6, 4660) and parse_short(" 6_4660 ") == (6, 4660)
    assert parse_short("6-4660") is None and parse_short(64) is None


@given(generation=st.sampled_from(Generation), type_=st.integers(0, 255),
       year=st.integers(0, 255), id_=st.integers(0, 2**64 - 1))
def test_fields_round_trip(generation, type_, year, id_):
    uid = Uid.of(generation, type_, year, id_)
    assert (uid.generation, uid.type_id, uid.year, uid.id) == (generation, type_, year, id_)
    assert Uid.parse(f" {uid} ") == uid


def test_errors_say_what_is_accepted():
    with pytest.raises(UidError, match="ASCII digits") as info:
        Uid.parse("\uff11\uff12")
    assert isinstance(info.value, ValueError)
    with pytest.raises(UidError, match="out of range"):
        Uid(2**88)
    with pytest.raises(UidError, match="lowcar device type = 256 is out of range"):
        Uid.lowcar(256, 0, 0)


def test_catalog_lookups_keep_the_generations_apart():
    lowcar_koala = CATALOG.get("KoalaBear", "lowcar")
    assert CATALOG.get("lowcar.KoalaBear") is lowcar_koala
    assert CATALOG.get(6, "lowcar") is lowcar_koala and CATALOG.get("6", "lowcar") is lowcar_koala
    assert CATALOG.get(0x106) is lowcar_koala
    assert CATALOG.get("KoalaBear") is CATALOG.get(13) is HIBIKE_KOALA
    assert [p.name for p in lowcar_koala.motor_params] == ["velocity_a", "velocity_b"]
    assert [p.name for p in CATALOG.get("PolarBear", "lowcar").motor_params] == ["duty_cycle"]
    with pytest.raises(RuntimeBaseException, match="in the lowcar generation"):
        CATALOG.get("YogiBear", "lowcar")
    with pytest.raises(RuntimeBaseException, match="unknown device generation"):
        CATALOG.get("KoalaBear", "steam")
