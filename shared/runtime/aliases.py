"""Device aliases: friendly names for device uids, persisted in the state dir.

The broker service writes them (``set_alias`` / ``del_alias`` RPC); the executor resolves them
when student code says ``Robot.get_value("left_motor", ...)``. The file is ``aliases.json`` in
the state dir, a flat JSON object ``{"left_motor": "<decimal uid>"}``, replaced atomically.
:class:`AliasFile` re-reads it only when it changed, so resolving costs a ``stat`` at most.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from runtime.exception import DeviceError
from runtime.protocol.uid import Uid, UidError
from runtime.statefile import read_json, write_json

ALIASES_FILE = "aliases.json"
NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
NAME_RULE = "1-64 letters, digits, '_' or '-', starting with a letter"


def aliases_path(state_dir: Path) -> Path:
    """Where the aliases of a state dir live."""
    return Path(state_dir) / ALIASES_FILE


def check_name(name: object) -> str:
    """``name`` if it can be an alias (never mistaken for a uid or ``<type>_<id>``)."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise DeviceError(
            f"alias name {name!r} is not allowed: use {NAME_RULE}", alias=name, allowed=NAME_RULE
        )
    return name


def check_uid(uid: object) -> str:
    """The canonical decimal form of a device uid (``runtime.protocol.uid``, the one parser)."""
    try:
        return str(Uid.parse(uid))
    except UidError as exc:
        raise DeviceError(
            f"{uid!r} is not a device uid: expected its decimal form (as in device/<uid>/info), "
            "a whole number below 2**88 in ASCII digits",
            uid=repr(uid), why=exc.message,
        ) from None


def load_aliases(state_dir: Path) -> dict[str, str]:
    """Every alias of ``state_dir`` (empty when none were ever set)."""
    path = aliases_path(state_dir)
    stored = read_json(path, DeviceError) or {}
    try:
        return {check_name(name): check_uid(uid) for name, uid in stored.items()}
    except DeviceError as exc:
        raise DeviceError(f"{path}: {exc.message}", path=str(path), **exc.context) from None


def set_alias(state_dir: Path, name: str, uid: str | int) -> dict[str, str]:
    """Point alias ``name`` at ``uid`` (replacing any previous target); returns all aliases."""
    aliases = load_aliases(state_dir)
    aliases[check_name(name)] = check_uid(uid)
    write_json(aliases_path(state_dir), aliases)
    return aliases


def del_alias(state_dir: Path, name: str) -> dict[str, str]:
    """Remove alias ``name``; an unknown name is an error listing the known ones."""
    aliases = load_aliases(state_dir)
    if name not in aliases:
        known = ", ".join(sorted(aliases)) or "none"
        raise DeviceError(
            f"there is no alias {name!r} (aliases: {known})", alias=name, known=sorted(aliases)
        )
    del aliases[name]
    write_json(aliases_path(state_dir), aliases)
    return aliases


class AliasFile:
    """Cached view of the aliases of a state dir, re-read only when the file changed."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self._stamp: tuple[int, int] | None = None
        self._aliases: dict[str, str] = {}

    def get(self) -> dict[str, str]:
        """The current aliases (a stat per call; a read only after a change)."""
        try:
            stat = os.stat(aliases_path(self.state_dir))
            stamp = (stat.st_mtime_ns, stat.st_ino)
        except FileNotFoundError:
            stamp = None
        if stamp != self._stamp:
            self._aliases = load_aliases(self.state_dir) if stamp else {}
            self._stamp = stamp
        return self._aliases

    def resolve(self, name: str) -> str | None:
        """The uid ``name`` stands for, or None when it is not an alias."""
        return self.get().get(name)
