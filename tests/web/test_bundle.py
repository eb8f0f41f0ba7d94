"""The committed JavaScript bundle is current: built from the pinned inputs, not edited.

web-src/build.mjs records the sha256 of its inputs (package.json, package-lock.json, entry.js,
build.mjs) and of its outputs in static/vendor/BUILD.json. Changing an input without running
``npm ci && node build.mjs`` in web-src/, or editing an output by hand, fails here (offline).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
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


def test_the_wheel_ships_the_page_and_its_libraries(tmp_path):
    """The image installs a wheel (Dockerfile): the page must be in it, not only in the tree."""
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("pie_runtime-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in STATIC.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            name = "runtime/web/" + path.relative_to(STATIC.parent).as_posix()
            assert name in names, f"{name} is not in the wheel: see package-data in pyproject"
