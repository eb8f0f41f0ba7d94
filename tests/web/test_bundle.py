"""The committed JavaScript bundle is current: built from the pinned inputs, not edited.

web-src/build.mjs records the sha256 of its inputs (package.json, package-lock.json, entry.js,
build.mjs) and of its outputs in static/vendor/BUILD.json. Changing an input without running
``npm ci && node build.mjs`` in web-src/, or editing an output by hand, fails here (offline).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from runtime.web import STATIC

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "web-src"
VENDOR = STATIC / "vendor"
REBUILD = "rebuild it: cd web-src && npm ci && node build.mjs, then commit static/vendor/"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def record() -> dict[str, dict[str, str]]:
    return json.loads((VENDOR / "BUILD.json").read_text())


def test_the_bundle_was_built_from_the_committed_inputs():
    for name, digest in record()["inputs"].items():
        assert sha256(SOURCE / name) == digest, f"web-src/{name} changed since the build: {REBUILD}"


def test_the_bundle_files_are_as_built():
    outputs = record()["outputs"]
    assert set(outputs) == {"vendor.js", "uPlot.min.css", "LICENSES.txt"}
    for name, digest in outputs.items():
        assert sha256(VENDOR / name) == digest, f"static/vendor/{name} was edited: {REBUILD}"


def test_every_pinned_package_is_exact_and_its_licence_is_shipped():
    package = json.loads((SOURCE / "package.json").read_text())
    licences = (VENDOR / "LICENSES.txt").read_text()
    for name, version in package["dependencies"].items():
        assert version[0].isdigit(), f"{name} is not pinned to one version: {version}"
        assert f"== {name} {version} (" in licences, f"no licence of {name} {version}"


def test_the_page_loads_nothing_from_outside_the_robot():
    for path in STATIC.glob("*.*"):
        text = path.read_text()
        assert "http://" not in text.replace("http://localhost", "") and "https://" not in text, \
            f"{path.name} refers to another host"
