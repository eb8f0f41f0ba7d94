"""The docs say what the code does: the key table of ``runtime drive`` in docs/cli.md is read
back and compared with the key map of ``runtime/cli/drive.py``; no page calls the arrow keys
the left stick (the sample program drives with the left stick: WASD)."""

from __future__ import annotations

import re
from pathlib import Path

from runtime.cli.drive import AXIS_KEYS, BUTTON_KEYS, COMMANDS, KEY_LABELS

ROOT = Path(__file__).resolve().parents[2]
MARKER = "<!-- drive-keys:"


def documented_keys() -> dict[str, str]:
    """key -> what it sends, from the table after the marker in docs/cli.md."""
    text = (ROOT / "docs" / "cli.md").read_text()
    assert MARKER in text, "docs/cli.md lost its drive key table"
    rows: dict[str, str] = {}
    for line in text.split(MARKER, 1)[1].splitlines()[3:]:
        if not line.startswith("|"):
            break
        keys, sends = (cell.strip() for cell in line.strip("|").split("|"))
        for key in re.findall(r"`([^`]+)`", keys):
            assert key not in rows, f"{key} twice in the table"
            rows[key] = sends
    return rows


def coded_keys() -> dict[str, str]:
    """key -> what it sends, from the code's tables."""
    expected: dict[str, str] = {}
    for axis, (plus, minus) in AXIS_KEYS.items():
        expected[plus] = f"`{axis}` +1"
        expected[minus] = f"`{axis}` -1"
    for key, button in BUTTON_KEYS.items():
        expected[key] = f"`{button}`"
    for key, command in COMMANDS.items():
        expected[KEY_LABELS[key]] = "quit" if command == "quit" else f"mode `{command}`"
    return expected


def test_the_docs_key_table_is_the_code_key_map():
    documented, coded = documented_keys(), coded_keys()
    assert set(documented) == set(coded)
    for key, sends in coded.items():
        assert documented[key].startswith(sends), (key, documented[key], sends)


def test_no_page_calls_the_arrows_the_left_stick():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for page in pages:
        for number, line in enumerate(page.read_text().splitlines(), 1):
            for clause in re.split(r"[.;,()|]", line.lower()):
                assert not ("arrow" in clause and "left stick" in clause), \
                    f"{page.name}:{number}: {line}"
