"""Regenerate ``pie_client_pb2.py`` / ``.pyi`` from ``pie_client.proto`` with grpcio-tools.

    python -m runtime.service.gateway.proto.build [OUTPUT_DIR]

The generated modules are committed (a robot installs no compiler); ``tests/gateway`` runs this
into a temporary directory and fails if the committed files differ, so the ``.proto`` text and
the code cannot drift apart. grpcio-tools is a test-extra dependency.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTO = "pie_client.proto"
GENERATED = ("pie_client_pb2.py", "pie_client_pb2.pyi")


def build(output: Path = HERE) -> list[Path]:
    """Run protoc on the shipped ``.proto``; the generated files. ``RuntimeError`` if it fails."""
    from grpc_tools import protoc  # test extra: only needed to regenerate

    output.mkdir(parents=True, exist_ok=True)
    code = protoc.main(["protoc", f"-I{HERE}", f"--python_out={output}", f"--pyi_out={output}",
                        str(HERE / PROTO)])
    if code != 0:
        raise RuntimeError(f"protoc failed on {PROTO} (exit {code})")
    return [output / name for name in GENERATED]


def main() -> int:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE
    for path in build(target):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
