"""Where a service finds its broker, its robot name, its state and its devices.

One frozen value object handed to every service's ``main(config)`` so that the command line,
``runtime up`` and tests start services the same way.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_MQTT_URL = "mqtt://127.0.0.1:1883"
DEFAULT_STATE_DIR = Path(os.environ.get("RUNTIME_STATE_DIR", "state"))


class ServiceConfig(BaseModel):
    """Settings common to every service (the CLI's common options)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mqtt: str = Field(default=DEFAULT_MQTT_URL, description="broker URL, mqtt://[user:pass@]host:port")
    robot: str = Field(default="robot", pattern=r"^[A-Za-z0-9_.-]+$")
    state_dir: Path = DEFAULT_STATE_DIR
    student_code: Path | None = None
    serial_globs: tuple[str, ...] = ("/dev/ttyACM*",)
    observer: str = Field(default="udev", pattern=r"^(udev|poll)$")
    virtual_listen: str | None = None
    password_file: Path | None = None

    @property
    def student_code_path(self) -> Path:
        """The student program: ``--student-code``, else ``studentcode.py`` in the state dir."""
        return self.student_code or self.state_dir / "studentcode.py"
