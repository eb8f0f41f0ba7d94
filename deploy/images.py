#!/usr/bin/env python3
"""The deployment's images built from Debian packages: no registry image needs to be pulled.

A robot network usually reaches no image registry. This builds everything ``compose.yaml`` runs
from a Debian mirror (and PyPI, for Runtime's own dependencies), on the robot itself or on a
staffer's laptop whose images are then copied to the fleet with ``docker save`` / ``load``:

- ``PREFIX/debian:bookworm``: a Debian bookworm minbase root made by ``debootstrap`` and
  ``docker import``-ed;
- ``PREFIX/python:3.11-bookworm``: that plus Debian's python3 and python3-venv (stands in for
  ``python:3.11-slim``; also trusts the host's CA bundle, so pip works where the host's egress
  is behind a TLS-inspecting proxy);
- ``PREFIX/mosquitto:2-bookworm``: that plus Debian's mosquitto, laid out like
  eclipse-mosquitto (``/mosquitto/{config,data,log}``, runs as the ``mosquitto`` user);
- with ``--runtime``, Runtime's image itself (``pie-runtime:latest``) from the ``Dockerfile`` on
  the python base.

Each base is built once and then reused (found by tag and recipe label): ``docker rmi`` it to
rebuild. Needs root (debootstrap), a running Docker engine, ``debootstrap``; stdlib only, so it
runs with the system's python3: ``sudo python3 deploy/images.py --runtime --save images.tar.gz``
(see docs/deployment.md). The compose test builds the bases with the prefix ``runtime-test``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "pie-runtime"
RUNTIME_IMAGE = "pie-runtime:latest"
MIRROR = os.environ.get("RUNTIME_DEBIAN_MIRROR",
                        os.environ.get("RUNTIME_TEST_DEBIAN_MIRROR",
                                       "http://deb.debian.org/debian"))
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
RECIPE_LABEL = "pie-runtime.recipe"


def tags(prefix: str = PREFIX) -> tuple[str, str, str]:
    """The (debian, python, mosquitto) base image tags under ``prefix``."""
    return (f"{prefix}/debian:bookworm", f"{prefix}/python:3.11-bookworm",
            f"{prefix}/mosquitto:2-bookworm")


DEBIAN, PYTHON, MOSQUITTO = tags()

PYTHON_DOCKERFILE = """\
FROM {debian}
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

MOSQUITTO_DOCKERFILE = """\
FROM {debian}
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


def run(args: list[str], timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command; AssertionError with its output if it fails."""
    result = subprocess.run(args, capture_output=True, text=True, env=docker_env(),
                            timeout=timeout)
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
         f'{{{{ index .Config.Labels "{RECIPE_LABEL}" }}}}', tag],
        capture_output=True, text=True, env=docker_env(),
    )
    if result.returncode != 0:
        return False
    return recipe is None or result.stdout.strip() == recipe_id(recipe)


def build_debian(tag: str, log: list[str]) -> None:
    """debootstrap a minbase bookworm into a temporary directory and import it as ``tag``."""
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
                            tag], stdin=tar.stdout, check=True, capture_output=True,
                           env=docker_env(), timeout=600)
        finally:
            assert tar.stdout is not None
            tar.stdout.close()
            tar.wait()
        log.append(f"{tag}: debootstrap + import {time.monotonic() - started:.0f} s")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def build_from(tag: str, dockerfile: str, files: dict[str, Path], log: list[str]) -> None:
    """``docker build`` a small Dockerfile (host network: apt needs the mirror)."""
    context = Path(tempfile.mkdtemp(prefix="runtime-image-"))
    try:
        label = f'LABEL {RECIPE_LABEL}="{recipe_id(dockerfile)}"\n'
        (context / "Dockerfile").write_text(dockerfile + label, encoding="utf-8")
        for name, source in files.items():
            shutil.copyfile(source, context / name)
        started = time.monotonic()
        run([docker_binary(), "build", "--network", "host", "-t", tag, str(context)],
            timeout=1200)
        log.append(f"{tag}: built in {time.monotonic() - started:.0f} s")
    finally:
        shutil.rmtree(context, ignore_errors=True)


def ensure_base_images(prefix: str = PREFIX) -> list[str]:
    """Build whichever base image is missing; return what was done (for a report)."""
    debian, python, mosquitto = tags(prefix)
    log: list[str] = []
    if not image_exists(debian):
        build_debian(debian, log)
    python_dockerfile = PYTHON_DOCKERFILE.format(debian=debian)
    files = {"host-ca.crt": HOST_CA_BUNDLE}
    if not HOST_CA_BUNDLE.exists():
        python_dockerfile = python_dockerfile.replace(
            "COPY host-ca.crt /etc/ssl/certs/ca-certificates.crt\n", "")
        files = {}
    if not image_exists(python, python_dockerfile):
        build_from(python, python_dockerfile, files, log)
    mosquitto_dockerfile = MOSQUITTO_DOCKERFILE.format(debian=debian)
    if not image_exists(mosquitto, mosquitto_dockerfile):
        build_from(mosquitto, mosquitto_dockerfile, {}, log)
    return log or [f"base images {prefix}/* cached"]


def build_runtime(prefix: str = PREFIX, tag: str = RUNTIME_IMAGE) -> str:
    """``docker build`` Runtime's image from the Dockerfile on the local python base."""
    started = time.monotonic()
    run([docker_binary(), "build", "--network", "host", "--build-arg",
         f"PYTHON_IMAGE={tags(prefix)[1]}", "-t", tag, str(ROOT)], timeout=1800)
    return f"{tag}: built in {time.monotonic() - started:.0f} s"


def save(path: Path, images: list[str]) -> str:
    """``docker save`` ``images`` into one gzip file for ``docker load -i`` on each robot."""
    started = time.monotonic()
    with path.open("wb") as out:
        saver = subprocess.Popen([docker_binary(), "save", *images], stdout=subprocess.PIPE,
                                 env=docker_env())
        assert saver.stdout is not None
        subprocess.run(["gzip", "-1"], stdin=saver.stdout, stdout=out, check=True)
        saver.stdout.close()
        if saver.wait() != 0:
            raise AssertionError(f"docker save {' '.join(images)} failed")
    size = path.stat().st_size / 1e6
    return f"{path}: {', '.join(images)} ({size:.0f} MB) in {time.monotonic() - started:.0f} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Build the deployment's images from Debian packages (no registry pull).")
    parser.add_argument("--prefix", default=PREFIX, help="tag prefix of the base images "
                        f"(default {PREFIX}: {', '.join(tags())})")
    parser.add_argument("--runtime", action="store_true",
                        help=f"also build Runtime's image ({RUNTIME_IMAGE}) from the Dockerfile")
    parser.add_argument("--save", type=Path, metavar="FILE",
                        help="then docker save Runtime's and Mosquitto's images into FILE "
                        "(gzip) for `docker load -i FILE` on each robot")
    args = parser.parse_args(argv)
    try:
        for line in ensure_base_images(args.prefix):
            print(line, flush=True)
        if args.runtime or args.save:
            print(build_runtime(args.prefix), flush=True)
        if args.save:
            print(save(args.save, [RUNTIME_IMAGE, tags(args.prefix)[2]]), flush=True)
    except (AssertionError, OSError, subprocess.SubprocessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    _, _, mosquitto = tags(args.prefix)
    print(f"In .env: MOSQUITTO_IMAGE={mosquitto} PYTHON_IMAGE={tags(args.prefix)[1]}; then "
          "`docker-compose up -d` (add --build to rebuild Runtime's image from the source)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
