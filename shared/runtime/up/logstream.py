"""One readable stream for the logs of every process ``runtime up`` runs.

Each line gets a fixed-width prefix naming its source (``broker |``, ``device |``...). On a
terminal the prefix has a colour per source and warnings/errors are highlighted; piped into a
file or a test, the stream is plain text. ``NO_COLOR`` (https://no-color.org) turns colour off.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

RESET = "\033[0m"
PALETTE = ("\033[36m", "\033[32m", "\033[35m", "\033[34m", "\033[33m", "\033[96m", "\033[92m")
FIXED = {"up": "\033[1m", "broker": PALETTE[0], "device": PALETTE[1], "executor": PALETTE[2]}
LEVEL_COLOURS = (
    (("CRITICAL", "ERROR", "Traceback"), "\033[31m"),
    (("WARNING",), "\033[33m"),
)


class LogStream:
    """Writes ``source | text`` lines, coloured per source when the output is a terminal."""

    def __init__(self, out: TextIO | None = None, colour: bool | None = None, width: int = 8):
        self.out = out or sys.stderr
        if colour is None:
            colour = self.out.isatty() and "NO_COLOR" not in os.environ
        self.colour = colour
        self.width = width
        self._colours: dict[str, str] = dict(FIXED)

    def _colour_of(self, source: str) -> str:
        if source not in self._colours:
            self._colours[source] = PALETTE[(len(self._colours) + 3) % len(PALETTE)]
        return self._colours[source]

    def format(self, source: str, text: str) -> str:
        """The line as it will be written (without the newline)."""
        prefix = f"{source:>{self.width}} |"
        if not self.colour:
            return f"{prefix} {text}"
        for words, colour in LEVEL_COLOURS:
            if any(word in text for word in words):
                text = f"{colour}{text}{RESET}"
                break
        return f"{self._colour_of(source)}{prefix}{RESET} {text}"

    def line(self, source: str, text: str) -> None:
        """Write one line from ``source`` (never raises: a closed terminal must not stop us)."""
        try:
            self.out.write(self.format(source, text.rstrip("\r\n")) + "\n")
            self.out.flush()
        except (OSError, ValueError):
            pass


class StreamHandler(logging.Handler):
    """A logging handler that writes records into a :class:`LogStream` under one source."""

    def __init__(self, stream: LogStream, source: str = "up") -> None:
        super().__init__()
        self.stream = stream
        self.source = source
        self.setFormatter(logging.Formatter("%(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:
            self.handleError(record)
            return
        for part in text.splitlines() or [""]:
            self.stream.line(self.source, part)
