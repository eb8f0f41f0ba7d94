"""Commands that talk to a running robot: ``mode``, ``devices``, ``lint``, ``option``,
``alias``, ``upload``.

Each is one RPC (or a short look at retained topics) through ``runtime.remote``. Anything the
robot refuses, or a robot that cannot be reached, is raised and printed as one line on stderr
(``error: ...``) with exit code 1 by the error boundary (:mod:`runtime.cli.errors`).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from typing import Any

import click

from runtime.cli.common import connection_options, password_file_option
from runtime.cli.errors import fail, unreachable
from runtime.cli.main import main
from runtime.exception import MQTTConnectionError
from runtime.remote import call_sync

MODES = ("idle", "auto", "teleop", "estop")


def robot_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--mqtt``, ``--robot``, ``--password-file`` and ``--timeout`` for a robot command."""
    func = click.option(
        "--timeout", type=float, default=5.0, show_default=True,
        help="Seconds to wait for the robot.",
    )(func)
    func = password_file_option(func)
    return connection_options(func)


def robot_call(params: dict[str, Any], service: str, method: str, *args: Any,
               timeout: float | None = None, **kwargs: Any) -> Any:
    """``service.method(*args, **kwargs)`` on the robot named by the command's options."""
    wait = timeout if timeout is not None else params["timeout"]
    logging.getLogger("runtime.remote").setLevel(logging.ERROR)  # reported below, in one line
    try:  # a refused call: one line from the error boundary
        return call_sync(
            params["mqtt"], service, method, args, kwargs, robot=params["robot"], timeout=wait,
            password_file=params["password_file"],
        )
    except MQTTConnectionError as exc:
        unreachable(exc)


def common(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The connection options of a command, out of its keyword arguments."""
    return {key: kwargs.pop(key) for key in ("mqtt", "robot", "password_file", "timeout")}


# -- mode --------------------------------------------------------------------------------------
@main.command()
@click.argument("mode", type=click.Choice([*MODES, "autonomous"]))
@click.option("--alliance", type=click.Choice(["blue", "gold"]), default=None)
@click.option("--start-pos", type=click.Choice(["left", "right"]), default=None)
@click.option("--clear-estop", is_flag=True,
              help="Clear a latched estop first (field control or a local operator only).")
@robot_options
def mode(mode: str, alliance: str | None, start_pos: str | None, clear_estop: bool,
         **kwargs: Any) -> None:
    """Set the robot's mode: idle, auto (or autonomous), teleop, estop.

    The mode that is already running starts again (a fresh run of the stored program).
    """
    params = common(kwargs)
    mode = "auto" if mode == "autonomous" else mode
    extra = {"clear_estop": True} if clear_estop else {}
    result = robot_call(params, "executor", "set_mode", mode, alliance=alliance,
                        start_pos=start_pos, **extra)
    restarted = isinstance(result, dict) and result.get("restarted")
    click.echo(f"{params['robot']}: mode {mode}{' (restarted)' if restarted else ''}")


# -- lint --------------------------------------------------------------------------------------
@main.command("lint")
@click.option("--json", "as_json", is_flag=True, help="Print pylint's messages as JSON.")
@robot_options
def lint_command(as_json: bool, **kwargs: Any) -> None:
    """Run pylint on the robot's student program.

    Exit code 1 when pylint found an error (undefined name, syntax error...), else 0.
    """
    params = common(kwargs)
    messages = robot_call(params, "broker", "lint", timeout=max(params["timeout"], 60.0))
    if as_json:
        click.echo(json.dumps(messages, indent=2))
    else:
        for message in messages:
            click.echo(
                f"{message.get('path')}:{message.get('line')}:{message.get('column')}: "
                f"{message.get('type')} {message.get('symbol')}: {message.get('message')}"
            )
        click.echo(f"{len(messages)} problem{'s' if len(messages) != 1 else ''} found", err=True)
    if any(message.get("type") in ("error", "fatal") for message in messages):
        sys.exit(1)


# -- options -----------------------------------------------------------------------------------
@main.group()
def option() -> None:
    """Read or change the robot's options (applied at the next start)."""


@option.command("get")
@click.argument("name", required=False)
@robot_options
def option_get(name: str | None, **kwargs: Any) -> None:
    """Print one option, or all of them."""
    params = common(kwargs)
    value = robot_call(params, "broker", "get_option", name)
    if name is None:
        for key, item in value.items():
            click.echo(f"{key} = {json.dumps(item)}")
    else:
        click.echo(json.dumps(value))


def parse_assignment(text: str) -> tuple[str, Any]:
    """``name=value`` with value as JSON (``0.05``, ``true``), or as text if it is not JSON."""
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise click.BadParameter(f"{text!r}: expected NAME=VALUE, e.g. data_rate=10")
    try:
        return name.strip(), json.loads(raw)
    except json.JSONDecodeError:
        return name.strip(), raw


@option.command("set")
@click.argument("assignments", nargs=-1, required=True, metavar="NAME=VALUE...")
@robot_options
def option_set(assignments: tuple[str, ...], **kwargs: Any) -> None:
    """Change options, e.g. `runtime option set data_rate=10 main_period=0.05`."""
    params = common(kwargs)
    changes = dict(parse_assignment(text) for text in assignments)
    robot_call(params, "broker", "set_option", changes)
    for key, value in changes.items():
        click.echo(f"{key} = {json.dumps(value)} (applied at the next start)")


# -- aliases -----------------------------------------------------------------------------------
@main.group()
def alias() -> None:
    """Name devices for student code: Robot.get_value("left_motor", ...)."""


@alias.command("set")
@click.argument("name")
@click.argument("uid")
@robot_options
def alias_set(name: str, uid: str, **kwargs: Any) -> None:
    """Call device UID by NAME."""
    result = robot_call(common(kwargs), "broker", "set_alias", name, uid)
    click.echo(f"{name} -> {result[name]}")


@alias.command("del")
@click.argument("name")
@robot_options
def alias_del(name: str, **kwargs: Any) -> None:
    """Forget alias NAME."""
    robot_call(common(kwargs), "broker", "del_alias", name)
    click.echo(f"{name} deleted")


@alias.command("list")
@robot_options
def alias_list(**kwargs: Any) -> None:
    """Print every alias as NAME UID."""
    aliases = robot_call(common(kwargs), "broker", "list_aliases")
    for name, uid in sorted(aliases.items()):
        click.echo(f"{name} {uid}")


# -- upload ------------------------------------------------------------------------------------
@main.command()
@click.argument("file", type=click.File("r", encoding="utf-8"))
@robot_options
def upload(file: Any, **kwargs: Any) -> None:
    """Store FILE as the robot's student program (it runs from the next mode start)."""
    params = common(kwargs)
    try:
        source = file.read()
    except UnicodeDecodeError as exc:
        fail(f"{file.name} is not UTF-8 text: {exc.reason} at byte {exc.start}")
    result = robot_call(params, "executor", "upload", source)
    digest = result.get("sha256", "") if isinstance(result, dict) else ""
    click.echo(f"uploaded {file.name} ({len(source.encode())} bytes, sha256 {digest[:12]})")
    for warning in (result.get("warnings") or []) if isinstance(result, dict) else []:
        click.echo(f"warning: {warning}", err=True)
