"""The committed protobuf module is what the shipped ``.proto`` generates."""

from __future__ import annotations

import tomllib
from pathlib import Path

from runtime.service.gateway.proto import build

ROOT = Path(__file__).resolve().parents[2]


def test_generated_module_is_current(tmp_path: Path) -> None:
    for generated in build.build(tmp_path):
        committed = build.HERE / generated.name
        assert committed.read_text() == generated.read_text(), (
            f"{committed.name} is stale: run ./run protos and commit the result")


def test_the_proto_text_is_shipped_with_the_package() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    data = config["tool"]["setuptools"]["package-data"]["runtime.service.gateway.proto"]
    assert "*.proto" in data
