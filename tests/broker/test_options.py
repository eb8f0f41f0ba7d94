"""Options: defaults of design.md, validation with clear errors, atomic persistence."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest
from runtime.exception import OptionError
from runtime.options import (
    OPTION_NAMES,
    Options,
    get_option,
    load_options,
    options_path,
    set_options,
)


def test_defaults_are_the_timing_defaults_of_the_design(tmp_path: Path) -> None:
    options = load_options(tmp_path)
    assert options == Options()
    assert get_option(options) == {
        "main_period": 0.02,
        "setup_timeout": 2.0,
        "import_timeout": 2.0,
        "stop_grace": 0.05,
        "student_memory": 512,
        "subscription_interval": 0.04,
        "data_rate": 25.0,
        "discovery_timeout": 10.0,
        "observer_interval": 1.0,
        "gateway_host": "0.0.0.0",
        "gateway_port": 8101,
    }
    assert not options_path(tmp_path).exists()


def test_set_persists_only_what_was_set_and_survives_a_reload(tmp_path: Path) -> None:
    set_options(tmp_path, {"data_rate": 10, "main_period": 0.05})
    stored = json.loads(options_path(tmp_path).read_text())
    assert stored == {"data_rate": 10.0, "main_period": 0.05}
    set_options(tmp_path, {"setup_timeout": 3})
    options = load_options(tmp_path)
    assert (options.data_rate, options.main_period, options.setup_timeout) == (10, 0.05, 3)
    assert get_option(options, "import_timeout") == 2.0


def test_unknown_option_names_the_option_and_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(OptionError) as info:
        set_options(tmp_path, {"speed": 3})
    assert "unknown option 'speed'" in info.value.message
    assert info.value.context["allowed"] == list(OPTION_NAMES)
    with pytest.raises(OptionError, match="unknown option 'speed'"):
        get_option(Options(), "speed")


@pytest.mark.parametrize(
    ("name", "value"),
    [("main_period", 0), ("main_period", "fast"), ("data_rate", -1), ("data_rate", True),
     ("subscription_interval", 70.0), ("discovery_timeout", None)],
)
def test_bad_values_are_refused_with_the_allowed_range_and_nothing_is_written(
    tmp_path: Path, name: str, value: object
) -> None:
    set_options(tmp_path, {"data_rate": 5})
    before = options_path(tmp_path).read_bytes()
    with pytest.raises(OptionError) as info:
        set_options(tmp_path, {"observer_interval": 2, name: value})
    assert f"option {name!r} must be a number" in info.value.message
    assert info.value.context["option"] == name
    assert options_path(tmp_path).read_bytes() == before


def test_a_non_map_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="must be a map of option names"):
        set_options(tmp_path, [("data_rate", 3)])  # type: ignore[arg-type]


def test_a_corrupt_file_is_reported_with_its_path(tmp_path: Path) -> None:
    options_path(tmp_path).write_text('{"data_rate": ')
    with pytest.raises(OptionError, match=r"options\.json is not valid JSON"):
        load_options(tmp_path)
    options_path(tmp_path).write_text('{"data_rate": "x"}')
    with pytest.raises(OptionError, match=r"option 'data_rate' in .*options\.json must be"):
        load_options(tmp_path)


def _hammer(state_dir: str, rate: float, count: int) -> None:
    for _ in range(count):
        set_options(Path(state_dir), {"data_rate": rate})


def test_concurrent_writers_never_leave_a_torn_file(tmp_path: Path) -> None:
    """Two processes rewriting the file while we read it: every read is a whole document."""
    context = multiprocessing.get_context("spawn")
    writers = [
        context.Process(target=_hammer, args=(str(tmp_path), rate, 200)) for rate in (1.0, 2.0)
    ]
    for writer in writers:
        writer.start()
    seen = set()
    while any(writer.is_alive() for writer in writers):
        if options_path(tmp_path).exists():
            seen.add(load_options(tmp_path).data_rate)
    for writer in writers:
        writer.join()
        assert writer.exitcode == 0
    assert seen <= {1.0, 2.0}
    assert load_options(tmp_path).data_rate in {1.0, 2.0}
    assert [p.name for p in tmp_path.iterdir()] == ["options.json"]  # no temporary files left
