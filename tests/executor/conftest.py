"""Fixtures of the executor tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.executor.rig import Rig


@pytest.fixture
def make_rig(tmp_path: Path, robot_name: str) -> Iterator[Callable[..., Rig]]:
    """``make_rig(program=..., timeouts=...)``: an in-process executor (see rig.py)."""
    rigs: list[Rig] = []

    def make(**kwargs: object) -> Rig:
        rig = Rig(tmp_path, robot_name, **kwargs)  # type: ignore[arg-type]
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.close()
