# One image for the three services (compose.yaml runs it as broker, device and executor).
#
#   docker build -t pie-runtime .                       # python:3.11-slim base
#   docker build --build-arg PYTHON_IMAGE=... -t ...    # any Debian-like Python 3.11+ image
#
# Stage 1 builds wheels (the dependencies in a layer of their own, rebuilt only when
# pyproject.toml changes) and installs them into a venv; stage 2 copies that venv onto a clean
# base: no compilers, no pip, no caches, no wheels, no source tree in the final image. The
# services run as the unprivileged user `runtime`, in group dialout for /dev/ttyACM*.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/build \
 && python3 -m venv --without-pip /opt/runtime
WORKDIR /src
COPY pyproject.toml README.md ./
RUN python3 -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; open('requirements.txt', 'w').write('\n'.join(deps))" \
 && /opt/build/bin/pip wheel --wheel-dir /wheels -r requirements.txt
COPY shared shared
COPY services services
RUN /opt/build/bin/pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/build/bin/pip --python /opt/runtime/bin/python install --no-index \
        --find-links /wheels pie-runtime \
 && /opt/runtime/bin/python -c "import runtime.cli, runtime.service.broker"

FROM ${PYTHON_IMAGE}
RUN useradd --system --user-group --groups dialout --home-dir /var/lib/runtime \
        --create-home --shell /usr/sbin/nologin runtime
COPY --from=build /opt/runtime /opt/runtime
ENV PATH=/opt/runtime/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    RUNTIME_STATE_DIR=/var/lib/runtime
# pyudev needs libudev at run time (part of Debian's base system; checked, not installed).
RUN python3 -c "import ctypes.util, sys; sys.exit(ctypes.util.find_library('udev') is None and 'libudev not found in the base image')" \
 && runtime --version
USER runtime
WORKDIR /var/lib/runtime
VOLUME /var/lib/runtime
CMD ["runtime", "--help"]
