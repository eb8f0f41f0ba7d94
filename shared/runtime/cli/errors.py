"""The command line's one error boundary: every failure is one ``error:`` line and exit code 1.

Commands do not print their own errors: they raise, and :class:`RuntimeGroup` (the root group)
turns the exception into one line on stderr. :class:`CommandError` is for what a command itself
refuses; Runtime's own errors (``RuntimeBaseException``: a refused RPC, a broker that cannot be
reached, a bad option file) print their message; an ``OSError`` its reason and file; usage
errors click's message and where to get help. Anything else is a bug in Runtime: still one line
(``RUNTIME_DEBUG=1`` shows the traceback), so a user never meets a traceback by default.

Ctrl-C exits 130 without a message; a closed stdout (``runtime monitor | head``) exits quietly.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import click

from runtime.exception import MQTTConnectionError, RuntimeBaseException

#: Added to "cannot connect" errors of the commands that talk to a robot.
NOT_RUNNING_HINT = "is the robot running? start one with `runtime up`"


class CommandError(click.ClickException):
    """A command refuses: ``error: <message>``, exit code 1."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        emit(self.format_message())


def fail(message: str) -> NoReturn:
    """Stop the command with ``error: message`` (printed by the boundary)."""
    raise CommandError(message)


def unreachable(exc: MQTTConnectionError) -> NoReturn:
    """Stop a command that talks to a robot: the connection error, and the likely cause when
    nothing answered (not for a bad URL or a refused login)."""
    hint = f" ({NOT_RUNNING_HINT})" if exc.message.startswith("cannot connect") else ""
    fail(exc.message + hint)


def emit(message: str) -> None:
    """Write the one error line (never raises: stderr may be gone too)."""
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    with contextlib.suppress(Exception):
        click.echo(f"error: {message}", err=True)


def describe(exc: BaseException) -> str:
    """The one line for an exception raised out of a command."""
    if isinstance(exc, click.UsageError):
        where = exc.ctx.command_path if exc.ctx is not None else "runtime"
        return f"{exc.format_message()} (see `{where} --help`)"
    if isinstance(exc, click.ClickException):
        return exc.format_message()
    if isinstance(exc, RuntimeBaseException):
        return exc.message
    if isinstance(exc, OSError):
        reason: str = exc.strerror or str(exc) or type(exc).__name__
        return f"{exc.filename}: {reason}" if exc.filename is not None else reason
    return (f"unexpected {type(exc).__name__}: {exc} (a bug in Runtime; run with "
            "RUNTIME_DEBUG=1 for the traceback)")


class RuntimeGroup(click.Group):
    """The root group: runs the command, then reports any failure in one line, exit code 1."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except (KeyboardInterrupt, click.Abort):  # click already ended the line
            sys.exit(130)
        except BrokenPipeError:
            _quiet_stdout()
            sys.exit(1)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except SystemExit:
            raise
        except Exception as exc:
            if os.environ.get("RUNTIME_DEBUG") and not isinstance(
                    exc, click.ClickException | RuntimeBaseException):
                raise
            emit(describe(exc))
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)


def _quiet_stdout() -> None:
    """After EPIPE, point stdout at /dev/null so the interpreter's final flush is silent."""
    with contextlib.suppress(Exception):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
