"""Options shared by the commands that talk to a robot or run a service."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from runtime.address import Address, AddressType
from runtime.config import DEFAULT_MQTT_URL, DEFAULT_STATE_DIR, ServiceConfig
from runtime.exception import MessageError
from runtime.topics import check_name


def _robot_name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A robot name is a topic level: refused at the command line, not deep in a connection."""
    try:
        return check_name(value, "robot name")
    except MessageError as exc:
        raise click.BadParameter(exc.message) from None


#: ``--password-file``: the one definition every command shares (an unreadable file is a usage
#: error at the command line, not a traceback from inside a connection).
password_file_option = click.option(
    "--password-file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False, readable=True),
    default=None,
    envvar="RUNTIME_PASSWORD_FILE",
    help="File holding the MQTT password on its first line (instead of putting it in --mqtt).",
)


def connection_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--mqtt`` and ``--robot``: enough for any client command."""
    func = click.option(
        "--robot", default="robot", show_default=True, envvar="RUNTIME_ROBOT",
        callback=_robot_name, help="Robot name.",
    )(func)
    func = click.option(
        "--mqtt",
        default=DEFAULT_MQTT_URL,
        show_default=True,
        envvar="RUNTIME_MQTT",
        help="MQTT broker URL (mqtt://[user:pass@]host:port).",
    )(func)
    return func


def service_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Every option a service may need; collected into a ServiceConfig as ``config``."""

    def build(**kwargs: Any) -> Any:
        config = ServiceConfig(
            mqtt=kwargs.pop("mqtt"),
            robot=kwargs.pop("robot"),
            state_dir=kwargs.pop("state_dir"),
            student_code=kwargs.pop("student_code"),
            serial_globs=tuple(kwargs.pop("serial_glob")) or ("/dev/ttyACM*",),
            observer=kwargs.pop("observer"),
            virtual_listen=_text(kwargs.pop("virtual_listen")),
            password_file=kwargs.pop("password_file"),
        )
        return func(config=config, **kwargs)

    build.__name__ = func.__name__
    build.__doc__ = func.__doc__
    options = [
        password_file_option,
        click.option(
            "--virtual-listen",
            default=None,
            type=AddressType(("unix", "tcp")),  # a bad address fails here, in one line
            envvar="RUNTIME_VIRTUAL_LISTEN",
            help="Accept virtual smart devices on unix:PATH or tcp:HOST:PORT.",
        ),
        click.option(
            "--observer",
            type=click.Choice(["udev", "poll"]),
            default="udev",
            show_default=True,
            help="How serial devices are found.",
        ),
        click.option(
            "--serial-glob",
            multiple=True,
            help="Serial paths to watch (repeatable; default /dev/ttyACM*).",
        ),
        click.option(
            "--student-code",
            type=click.Path(path_type=Path),
            default=None,
            help="Student program (default: studentcode.py in the state dir).",
        ),
        click.option(
            "--state-dir",
            type=click.Path(path_type=Path),
            default=DEFAULT_STATE_DIR,
            show_default=True,
            envvar="RUNTIME_STATE_DIR",
            help="Options, aliases and student code live here.",
        ),
    ]
    wrapped: Callable[..., Any] = build
    for option in options:
        wrapped = option(wrapped)
    return connection_options(wrapped)


def _text(address: Address | None) -> str | None:
    """An address checked at the command line, in its canonical text form (the config's)."""
    return None if address is None else str(address)
