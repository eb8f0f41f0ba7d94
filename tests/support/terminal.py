"""A real pseudo-terminal for a command under test (``runtime console``, ``drive``, ``devices``).

The command gets the terminal's slave side as stdin, stdout and stderr, so it sees a TTY (raw
keys, colours, window size); the test reads everything it draws into :attr:`Terminal.screen`
(from the event loop, so ``wait_for_async`` sees it grow) and types with :meth:`Terminal.type`.
Leaving the ``async with`` kills a command still running and closes both sides, whatever the
test did.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import struct
import termios
from types import TracebackType


class Terminal:
    """A pseudo-terminal (of ``rows`` x ``columns`` when given) and the command run on it."""

    def __init__(self, rows: int | None = None, columns: int | None = None) -> None:
        self.master, self.slave = os.openpty()
        if rows is not None and columns is not None:
            fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        self.screen = bytearray()  #: every byte the command wrote, in order
        self.process: asyncio.subprocess.Process | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def __aenter__(self) -> Terminal:
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.master, self._read)
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self.master)
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _read(self) -> None:
        with contextlib.suppress(OSError):  # EIO once nothing holds the slave side open
            self.screen.extend(os.read(self.master, 65536))

    async def run(self, *argv: str, colour: bool = False) -> asyncio.subprocess.Process:
        """Start ``argv`` on this terminal; ``colour``: without ``NO_COLOR`` in its environment
        (the test suite sets it), so the command colours its output as on a user's terminal."""
        env = ({key: value for key, value in os.environ.items() if key != "NO_COLOR"}
               if colour else None)
        self.process = await asyncio.create_subprocess_exec(
            *argv, stdin=self.slave, stdout=self.slave, stderr=self.slave, env=env)
        return self.process

    def type(self, keys: bytes) -> None:
        """Keys typed at the terminal, as the user would."""
        os.write(self.master, keys)
