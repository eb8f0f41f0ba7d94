"""Reading the repository's Markdown docs: sections, table rows, code spans.

Small on purpose: the doc checks only need the tables of a page, split by ``## `` sections.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"

_CODE = re.compile(r"`([^`]+)`")


def section(page: str, title: str) -> str:
    """The text of ``## title`` in ``docs/<page>`` (up to the next ``## `` heading)."""
    text = (DOCS / page).read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"docs/{page} has no section '## {title}'"
    return match.group(1)


def table_rows(text: str) -> list[list[str]]:
    """The body rows of every Markdown table in ``text``, as stripped cells (``\\|`` unescaped)."""
    rows: list[list[str]] = []
    for line in text.splitlines():
        if not line.startswith("|"):
            continue
        cells = [cell.strip().replace("\\|", "|")
                 for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if all(set(cell) <= set("-: ") for cell in cells):
            rows.pop()  # the row above a separator is a header
            continue
        rows.append(cells)
    return rows


def code(cell: str) -> str:
    """The first code span of a cell."""
    match = _CODE.search(cell)
    assert match, f"no `code` in table cell {cell!r}"
    return match.group(1)


def brace_keys(cell: str) -> list[str]:
    """Top-level keys of a payload written ``{a, b: ..., c}`` in a cell."""
    text = code(cell)
    assert text.startswith("{") and text.endswith("}"), text
    keys, depth, current = [], 0, ""
    for char in text[1:-1]:
        if char in "{[(":
            depth += 1
        elif char in "}])":
            depth -= 1
        if char == "," and depth == 0:
            keys.append(current)
            current = ""
        else:
            current += char
    keys.append(current)
    return [key.split(":")[0].strip() for key in keys if key.strip()]
