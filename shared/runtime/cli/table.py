"""The devices table of ``runtime devices`` (once, or live with ``--watch``), compact by design.

One row per device: its name (alias, else uid), type, port, then as many ``param=value`` as
fit in the terminal width, the most recently changed first (a KoalaBear has 21 params; a row
of all of them is about 330 columns). ``--all`` shows every param, wrapped onto indented
continuation lines so that the table still fits. Pure functions of the devices' state: the
command supplies what it read or watched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Shown for a value the device never sent (not subscribed, never read): not a fake 0.
NOT_RECEIVED = "(none)"
#: Widest name and type cells (a full uid is 23-27 digits: names beat uids where there is one).
NAME_WIDTH = 26
TYPE_WIDTH = 13
PORT_WIDTH = 12


@dataclass
class DeviceRow:
    """What the table knows of one device."""

    uid: str
    type: str = "?"
    port: str | None = None
    name: str | None = None  # its alias, if it has one
    values: dict[str, Any] = field(default_factory=dict)
    changed: dict[str, float] = field(default_factory=dict)  # param -> when it last changed
    never: set[str] = field(default_factory=set)  # params the device never sent (not 0: unknown)

    def update(self, values: dict[str, Any], now: float) -> bool:
        """Take new values; True if any of them changed."""
        changed = False
        for param, value in values.items():
            self.never.discard(param)
            if param not in self.values or self.values[param] != value:
                self.changed[param] = now
                changed = True
            self.values[param] = value
        return changed

    def ordered(self) -> list[str]:
        """Params, the most recently changed first (ties in their original order)."""
        position = {param: index for index, param in enumerate(self.values)}
        return sorted(self.values, key=lambda p: (-self.changed.get(p, 0.0), position[p]))


def short(value: Any) -> str:
    """A value as few characters as possible: 3 significant digits for floats."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def short_port(port: str | None) -> str:
    """``/dev/ttyACM0`` -> ``ttyACM0``; ``virtual:/tmp/.../virtual.sock`` -> ``virtual``."""
    if not port:
        return "-"
    if port.startswith("virtual:"):
        return "virtual"
    return port.rsplit("/", 1)[-1]


def clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "~"


def render(rows: list[DeviceRow], width: int = 100, all_params: bool = False) -> list[str]:
    """The table's lines, none longer than ``width``."""
    width = max(width, 40)
    ordered = sorted(rows, key=lambda row: (row.type, row.name or "~", row.uid))
    name_width = min(NAME_WIDTH, max([len("DEVICE"), *(len(r.name or r.uid) for r in rows)]))
    type_width = min(TYPE_WIDTH, max([len("TYPE"), *(len(r.type) for r in rows)]))
    port_width = min(PORT_WIDTH, max([len("PORT"), *(len(short_port(r.port)) for r in rows)]))
    indent = name_width + type_width + port_width + 6
    room = width - indent

    def prefix(name: str, kind: str, port: str) -> str:
        return (f"{clip(name, name_width):<{name_width}}  {clip(kind, type_width):<{type_width}}"
                f"  {clip(port, port_width):<{port_width}}  ")

    lines = [(prefix("DEVICE", "TYPE", "PORT") + "VALUES (most recently changed first)")[:width]]
    for row in ordered:
        cells = [f"{param}={NOT_RECEIVED if param in row.never else short(row.values[param])}"
                 for param in row.ordered()]
        chunks: list[str] = []
        current = ""
        limit = room if all_params else room - len(" +99")  # room to say how many are hidden
        for shown, cell in enumerate(cells):
            cell = clip(cell, limit)
            candidate = f"{current} {cell}" if current else cell
            if len(candidate) <= limit:
                current = candidate
                continue
            if not all_params:
                current += f" +{len(cells) - shown}"
                break
            chunks.append(current)
            current = cell
        chunks.append(current)
        lines.append(prefix(row.name or row.uid, row.type, short_port(row.port)) + chunks[0])
        lines.extend(" " * indent + chunk for chunk in chunks[1:] if chunk)
    return lines
