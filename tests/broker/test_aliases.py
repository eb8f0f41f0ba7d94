"""Aliases: validation, persistence, and the executor's cached view."""

from __future__ import annotations

from pathlib import Path

import pytest
from runtime.aliases import AliasFile, aliases_path, del_alias, load_aliases, set_alias
from runtime.exception import DeviceError

UID = str((13 << 72) | (1 << 64) | 42)


def test_set_list_delete_round_trip(tmp_path: Path) -> None:
    assert load_aliases(tmp_path) == {}
    assert set_alias(tmp_path, "koala", UID) == {"koala": UID}
    set_alias(tmp_path, "arm", int(UID) + 1)
    assert load_aliases(tmp_path) == {"koala": UID, "arm": str(int(UID) + 1)}
    set_alias(tmp_path, "koala", "7")  # re-pointing replaces
    assert load_aliases(tmp_path)["koala"] == "7"
    assert del_alias(tmp_path, "koala") == {"arm": str(int(UID) + 1)}
    assert load_aliases(tmp_path) == {"arm": str(int(UID) + 1)}


@pytest.mark.parametrize("name", ["", "13_42", "42", "has space", "x" * 65, None, "é"])
def test_names_that_could_be_mistaken_for_a_device_are_refused(
    tmp_path: Path, name: object
) -> None:
    with pytest.raises(DeviceError, match=r"alias name .* is not allowed: use 1-64 letters"):
        set_alias(tmp_path, name, UID)  # type: ignore[arg-type]
    assert not aliases_path(tmp_path).exists()


@pytest.mark.parametrize("uid", ["abc", "-1", "13_42", str(1 << 88), 1.5, True, ""])
def test_targets_must_be_decimal_uids(tmp_path: Path, uid: object) -> None:
    with pytest.raises(DeviceError, match="is not a device uid: expected its decimal form"):
        set_alias(tmp_path, "koala", uid)  # type: ignore[arg-type]


def test_deleting_an_unknown_alias_lists_the_known_ones(tmp_path: Path) -> None:
    set_alias(tmp_path, "arm", UID)
    with pytest.raises(DeviceError, match=r"there is no alias 'leg' \(aliases: arm\)"):
        del_alias(tmp_path, "leg")


def test_a_hand_edited_bad_file_is_reported_with_its_path(tmp_path: Path) -> None:
    aliases_path(tmp_path).write_text('{"arm": "not a uid"}')
    with pytest.raises(DeviceError, match=r"aliases\.json: 'not a uid' is not a device uid"):
        load_aliases(tmp_path)


def test_alias_file_sees_changes_made_by_another_writer(tmp_path: Path) -> None:
    view = AliasFile(tmp_path)
    assert view.resolve("arm") is None
    set_alias(tmp_path, "arm", UID)
    assert view.resolve("arm") == UID
    set_alias(tmp_path, "arm", "5")
    assert view.resolve("arm") == "5"
    del_alias(tmp_path, "arm")
    assert view.get() == {}
    aliases_path(tmp_path).unlink()
    assert view.get() == {}
