"""Named shared-memory segments in ``/dev/shm``, owned by one process, attached by others.

Why not ``multiprocessing.shared_memory``: before Python 3.13 every process that merely attaches
registers the segment with its ``resource_tracker``, which unlinks it when that process exits. A
segment here is a plain file in ``/dev/shm`` (what ``shm_open`` does on Linux) mapped with
``mmap``, so no tracker is involved and only the owner ever unlinks.

Ownership is an ``flock`` (``LOCK_SH``) the owner holds on its descriptor for its whole life. The
kernel drops it when the owner dies, however it dies (``kill -9`` included), and it works across
PID namespaces (containers sharing ``/dev/shm``), which a recorded pid would not. A segment whose
lock can be taken exclusively has no owner: :func:`reclaim` removes it, and creating a buffer over
it replaces it.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
from pathlib import Path

from runtime.exception import BufferStoreError

SHM_DIR = Path(os.environ.get("RUNTIME_SHM_DIR", "/dev/shm"))
PREFIX = "runtime."
#: Separates the robot name from the key; robot names cannot contain it (see runtime.config).
SEPARATOR = "@"


def segment_name(robot: str, kind: str, key: str) -> str:
    """``runtime.<robot>@<kind>.<key>``: one namespace per robot, so robots never collide."""
    return f"{PREFIX}{robot}{SEPARATOR}{kind}.{key}"


def robot_prefix(robot: str) -> str:
    return f"{PREFIX}{robot}{SEPARATOR}"


class Segment:
    """One mapped segment. ``create`` makes the caller its owner; ``attach`` only maps it."""

    def __init__(self, name: str, fd: int, size: int, owner: bool) -> None:
        self.name = name
        self.path = SHM_DIR / name
        self.owner = owner
        self._fd = fd
        self.size = size
        self.map = mmap.mmap(fd, size)
        self.view = memoryview(self.map)

    @classmethod
    def create(cls, name: str, size: int) -> Segment:
        """Create ``name`` (replacing a dead owner's leftover) and own it."""
        path = SHM_DIR / name
        for _ in range(10):
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o660)
            except FileExistsError:
                if not _remove_if_unowned(path):
                    raise BufferStoreError(
                        f"shared-memory buffer {name} is already owned by a running process: "
                        "is another service of this robot running?",
                        buffer=name,
                    ) from None
                continue
            except OSError as exc:
                raise BufferStoreError(
                    f"cannot create shared-memory buffer {name}: {exc.strerror}", buffer=name
                ) from exc
            fcntl.flock(fd, fcntl.LOCK_SH)
            if _same_file(fd, path):
                os.ftruncate(fd, size)
                return cls(name, fd, size, owner=True)
            os.close(fd)  # a reclaimer unlinked it between our create and our lock: again
        raise BufferStoreError(f"cannot create shared-memory buffer {name}: it keeps vanishing",
                               buffer=name)

    @classmethod
    def attach(cls, name: str, what: str) -> Segment:
        """Map an existing, owned segment; BufferStoreError if it is missing or orphaned."""
        path = SHM_DIR / name
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            raise BufferStoreError(
                f"no shared-memory buffer for {what}: it does not exist (yet), or its owner "
                "stopped", buffer=name,
            ) from None
        except OSError as exc:
            raise BufferStoreError(f"cannot open the buffer of {what}: {exc.strerror}",
                                   buffer=name) from exc
        try:
            if _unowned(fd):
                raise BufferStoreError(
                    f"the buffer of {what} is left over from a process that died", buffer=name
                )
            size = os.fstat(fd).st_size
            if size == 0:
                raise BufferStoreError(f"the buffer of {what} is not initialised yet", buffer=name)
            return cls(name, fd, size, owner=False)
        except BaseException:
            os.close(fd)
            raise

    def close(self) -> None:
        """Unmap; the owner also unlinks (attached processes never do)."""
        if self._fd < 0:
            return
        self.view.release()
        with contextlib.suppress(BufferError):  # an exported view still alive: the GC frees it
            self.map.close()
        if self.owner:
            with contextlib.suppress(FileNotFoundError):
                if _same_file(self._fd, self.path):
                    os.unlink(self.path)
        os.close(self._fd)
        self._fd = -1

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def orphaned(self) -> bool:
        """True if no process holds the owner lock any more (never ask this of an owner: the
        probe would convert its own lock)."""
        return not self.closed and _unowned(self._fd)

    def replaced(self) -> bool:
        """True if the name now belongs to another segment (or none): the owner restarted."""
        return self.closed or not _same_file(self._fd, self.path)

    def fileno(self) -> int:
        return self._fd


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _unowned(fd: int) -> bool:
    """True if no process holds the owner lock (we then hold nothing: the probe is released)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    fcntl.flock(fd, fcntl.LOCK_UN)
    return True


def _remove_if_unowned(path: Path) -> bool:
    """Unlink ``path`` if its owner is gone; True if it is gone now."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        if _same_file(fd, path):
            os.unlink(path)
        return True
    finally:
        os.close(fd)


def list_segments(robot: str) -> list[str]:
    """Names of every segment of ``robot`` in the shm directory."""
    prefix = robot_prefix(robot)
    try:
        return sorted(entry for entry in os.listdir(SHM_DIR) if entry.startswith(prefix))
    except FileNotFoundError:
        return []


def reclaim(robot: str, kinds: tuple[str, ...] | None = None) -> list[str]:
    """Remove ``robot``'s segments (of ``kinds``, or all) whose owner died; their names."""
    removed = []
    prefix = robot_prefix(robot)
    for name in list_segments(robot):
        kind = name[len(prefix):].split(".", 1)[0]
        if kinds is not None and kind not in kinds:
            continue
        path = SHM_DIR / name
        if path.exists() and _remove_if_unowned(path):
            removed.append(name)
    return removed
