"""The compose test's base images: ``deploy/images.py`` (the staffer's offline build) with the
prefix ``runtime-test``, so that the test's images never replace a deployment's."""

from __future__ import annotations

import sys

from deploy.images import docker_binary, docker_env, tags
from deploy.images import ensure_base_images as _ensure

PREFIX = "runtime-test"
DEBIAN, PYTHON, MOSQUITTO = tags(PREFIX)

__all__ = ["DEBIAN", "MOSQUITTO", "PYTHON", "docker_binary", "docker_env", "ensure_base_images"]


def ensure_base_images() -> list[str]:
    return _ensure(PREFIX)


if __name__ == "__main__":
    for line in ensure_base_images():
        print(line)
    sys.exit(0)
