"""Robot options: the timing knobs of design.md, validated, persisted in the state dir.

Options are set over RPC (``broker.set_option``) or ``runtime option set`` and take effect at
the next start of the services that use them; each service reads them once with
:func:`load_options` when it starts. Who reads what:

- executor: ``main_period``, ``setup_timeout``, ``import_timeout``, ``stop_grace``,
  ``student_memory``
- device service: ``subscription_interval``, ``discovery_timeout``, ``observer_interval``
- broker service: ``data_rate``

The file is ``options.json`` in the state dir and holds only the options that were set, so a
changed default in a later version reaches robots that never touched that option.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from runtime.exception import OptionError
from runtime.statefile import read_json, write_json

OPTIONS_FILE = "options.json"


class Options(BaseModel):
    """Every option with its default; times in seconds, rates in Hz."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    main_period: float = Field(
        default=0.02, ge=0.005, le=10.0, description="seconds between two calls of *_main"
    )
    setup_timeout: float = Field(
        default=2.0, gt=0, le=60.0, description="time limit of *_setup, in seconds"
    )
    import_timeout: float = Field(
        default=2.0, gt=0, le=60.0, description="time limit of importing the student module"
    )
    stop_grace: float = Field(
        default=0.05, gt=0, le=5.0,
        description="seconds student code has to stop before its process is killed",
    )
    student_memory: int = Field(
        default=512, ge=0, le=65536,
        description="MB of memory the student program may use (0: no limit)",
    )
    subscription_interval: float = Field(
        default=0.04,
        ge=0.001,
        le=65.535,
        description="default interval of device data subscriptions, in seconds (u16 ms)",
    )
    data_rate: float = Field(
        default=25.0, gt=0, le=1000.0, description="device/<uid>/data publishes per second"
    )
    discovery_timeout: float = Field(
        default=10.0, gt=0, le=300.0, description="seconds a new port has to identify itself"
    )
    observer_interval: float = Field(
        default=1.0, gt=0, le=60.0, description="seconds between scans of the polling observer"
    )
    gateway_host: str = Field(
        default="0.0.0.0", min_length=1,
        description="address the gateway listens on for Dawn and Shepherd",
    )
    gateway_port: int = Field(
        default=8101, ge=0, le=65535, description="TCP port of the gateway (PiE's clients use 8101)"
    )


OPTION_NAMES: tuple[str, ...] = tuple(Options.model_fields)


def options_path(state_dir: Path) -> Path:
    """Where the options of a state dir live."""
    return Path(state_dir) / OPTIONS_FILE


def describe_allowed(name: str) -> str:
    """What ``name`` accepts, in words (for error messages and ``runtime option``)."""
    field = Options.model_fields[name]
    bounds = []
    for constraint in field.metadata:
        for attribute, word in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            value = getattr(constraint, attribute, None)
            if value is not None:
                bounds.append(f"{word} {value}")
    return f"a number {' and '.join(bounds)} ({field.description})"


def validate_options(values: dict[str, Any], where: str = "") -> Options:
    """Build :class:`Options` from ``values`` or raise one clear :class:`OptionError`.

    ``where`` (a file name) is added to the message when the values came from a file.
    """
    suffix = f" in {where}" if where else ""
    if not isinstance(values, dict):
        raise OptionError(
            f"options{suffix} must be a map of option names to values, "
            f"got {type(values).__name__}",
            allowed=list(OPTION_NAMES),
        )
    unknown = sorted(str(name) for name in values if name not in Options.model_fields)
    if unknown:
        raise OptionError(
            f"unknown option {unknown[0]!r}{suffix}; known options: {', '.join(OPTION_NAMES)}",
            option=unknown[0],
            allowed=list(OPTION_NAMES),
        )
    try:
        return Options(**values)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        name = str(first["loc"][0])
        raise OptionError(
            f"option {name!r}{suffix} must be {describe_allowed(name)}, "
            f"got {first['input']!r}",
            option=name,
            value=first["input"],
            allowed=describe_allowed(name),
        ) from None


def load_options(state_dir: Path) -> Options:
    """The options of ``state_dir`` (defaults for anything not set; all defaults if no file).

    Raises :class:`OptionError` naming the file when it is unreadable or holds a bad option.
    """
    path = options_path(state_dir)
    stored = read_json(path, OptionError)
    return validate_options(stored or {}, where=str(path))


def get_option(options: Options, name: str | None = None) -> Any:
    """One option's value, or every option as a dict when ``name`` is None."""
    if name is None:
        return options.model_dump()
    if name not in Options.model_fields:
        raise OptionError(
            f"unknown option {name!r}; known options: {', '.join(OPTION_NAMES)}",
            option=name,
            allowed=list(OPTION_NAMES),
        )
    return getattr(options, name)


def set_options(state_dir: Path, changes: dict[str, Any]) -> Options:
    """Validate ``changes`` on top of the stored options and persist them atomically.

    Nothing is written when any change is invalid. Returns the new options.
    """
    path = options_path(state_dir)
    stored = read_json(path, OptionError) or {}
    if not isinstance(changes, dict):
        validate_options(changes)  # raises the "must be a map" error
    merged = {**stored, **changes}
    options = validate_options(merged)
    write_json(path, options.model_dump(exclude_unset=True))
    return options
