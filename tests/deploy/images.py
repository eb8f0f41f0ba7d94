"""Local base images for the compose test: no registry image can be pulled on these machines.

- ``runtime-test/debian:bookworm``: a Debian bookworm minbase root made by ``debootstrap`` and
  ``docker import``-ed;
- ``runtime-test/python:3.11-bookworm``: that plus Debian's python3 and python3-venv (stands in
  for ``python:3.11-slim``; also trusts the host's CA bundle, so pip works where the host's
  egress is behind a TLS-inspecting proxy);
- ``runtime-test/mosquitto:2-bookworm``: that plus Debian's mosquitto, laid out like
  eclipse-mosquitto (``/mosquitto/{config,data,log}``, runs as the ``mosquitto`` user).

Each is built once and then reused (found by tag): delete them with ``docker rmi`` to rebuild.
Run as a script to build them ahead of the test: ``.venv/bin/python -m tests.deploy.images``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEBIAN = "runtime-test/debian:bookworm"
PYTHON = "runtime-test/python:3.11-bookworm"
MOSQUITTO = "runtime-test/mosquitto:2-bookworm"
MIRROR = os.environ.get("RUNTIME_TEST_DEBIAN_MIRROR", "http://deb.debian.org/debian")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")

PYTHON_DOCKERFILE = f"""\
FROM {DEBIAN}
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
      python3 python3-venv ca-certificates libudev1 \\
 && rm -rf /var/lib/apt/lists/* \\
 && ln -s /usr/bin/python3 /usr/local/bin/python
COPY host-ca.crt /etc/ssl/certs/ca-certificates.crt
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt \\
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \\
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
"""

MOSQUITTO_DOCKERFILE = f"""\
FROM {DEBIAN}
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
      mosquitto mosquitto-clients \\
 && rm -rf /var/lib/apt/lists/* \\
 && mkdir -p /mosquitto/config /mosquitto/data /mosquitto/log \\
 && chown -R mosquitto:mosquitto /mosquitto
EXPOSE 1883 9001
CMD ["/usr/sbin/mosquitto", "-c", "/mosquitto/config/mosquitto.conf"]
"""


def docker_binary() -> str:
    """Debian's docker client (matches Debian's dockerd) if installed, else the one on PATH."""
    for path in ("/usr/bin/docker", shutil.which("docker")):
        if path and Path(path).is_file():
            return path
    raise AssertionError("docker not found: apt-get install docker.io docker-compose debootstrap")


def docker_env() -> dict[str, str]:
    """The classic builder: docker-compose 1.29 and Debian's docker.io have no BuildKit."""
    return {**os.environ, "DOCKER_BUILDKIT": "0", "COMPOSE_DOCKER_CLI_BUILD": "0"}


def run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a command; AssertionError with its output if it fails."""
    result = subprocess.run(args, capture_output=True, text=True, env=docker_env(), **kwargs)
    if result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args[:4])}... failed ({result.returncode}):\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result


def recipe_id(text: str) -> str:
    """A short hash of how an image is made: a changed recipe means a rebuild."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def image_exists(tag: str, recipe: str | None = None) -> bool:
    """``tag`` is there (and, with ``recipe``, was built from that recipe)."""
    result = subprocess.run(
        [docker_binary(), "image", "inspect", "--format",
         '{{ index .Config.Labels "runtime-test.recipe" }}', tag],
        capture_output=True, text=True, env=docker_env(),
    )
    if result.returncode != 0:
        return False
    return recipe is None or result.stdout.strip() == recipe_id(recipe)


def build_debian(log: list[str]) -> None:
    """debootstrap a minbase bookworm into a temporary directory and import it."""
    if shutil.which("debootstrap") is None and not Path("/usr/sbin/debootstrap").exists():
        raise AssertionError("debootstrap not found: apt-get install debootstrap")
    root = Path(tempfile.mkdtemp(prefix="runtime-debootstrap-"))
    try:
        started = time.monotonic()
        run(["debootstrap", "--variant=minbase", "bookworm", str(root), MIRROR], timeout=1200)
        shutil.rmtree(root / "var" / "cache" / "apt" / "archives", ignore_errors=True)
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        try:
            subprocess.run([docker_binary(), "import", "--change", 'CMD ["/bin/bash"]', "-",
                            DEBIAN], stdin=tar.stdout, check=True, capture_output=True,
                           env=docker_env(), timeout=600)
        finally:
            assert tar.stdout is not None
            tar.stdout.close()
            tar.wait()
        log.append(f"{DEBIAN}: debootstrap + import {time.monotonic() - started:.0f} s")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def build_from(tag: str, dockerfile: str, files: dict[str, Path], log: list[str]) -> None:
    """``docker build`` a small Dockerfile (host network: apt needs the mirror)."""
    context = Path(tempfile.mkdtemp(prefix="runtime-image-"))
    try:
        label = f'LABEL runtime-test.recipe="{recipe_id(dockerfile)}"\n'
        (context / "Dockerfile").write_text(dockerfile + label, encoding="utf-8")
        for name, source in files.items():
            shutil.copyfile(source, context / name)
        started = time.monotonic()
        run([docker_binary(), "build", "--network", "host", "-t", tag, str(context)],
            timeout=1200)
        log.append(f"{tag}: built in {time.monotonic() - started:.0f} s")
    finally:
        shutil.rmtree(context, ignore_errors=True)


def ensure_base_images() -> list[str]:
    """Build whichever base image is missing; return what was done (for the test's report)."""
    log: list[str] = []
    if not image_exists(DEBIAN):
        build_debian(log)
    python_dockerfile, files = PYTHON_DOCKERFILE, {"host-ca.crt": HOST_CA_BUNDLE}
    if not HOST_CA_BUNDLE.exists():
        python_dockerfile = python_dockerfile.replace(
            "COPY host-ca.crt /etc/ssl/certs/ca-certificates.crt\n", "")
        files = {}
    if not image_exists(PYTHON, python_dockerfile):
        build_from(PYTHON, python_dockerfile, files, log)
    if not image_exists(MOSQUITTO, MOSQUITTO_DOCKERFILE):
        build_from(MOSQUITTO, MOSQUITTO_DOCKERFILE, {}, log)
    return log or ["base images cached"]


if __name__ == "__main__":
    for line in ensure_base_images():
        print(line)
    sys.exit(0)
