"""The executor service: runs student code against the robot (design.md, executor service).

- :class:`ExecutionRequest`: one call, or a periodic call whose timeout is its period.
- :class:`Dispatcher`: the control process: modes, authority, RPC (``set_mode``, ``get_mode``,
  ``upload``), safety; one student process per run, forked by a warm zygote.
- in the student process, :class:`StudentRunner` runs one mode with the
  :class:`SyncExecutor` (``*_setup`` / ``*_main`` in the main thread, interrupted by signals)
  and the :class:`AsyncExecutor` (``Robot.run`` actions, asyncio tasks and threads).
- :func:`main`: the service (``runtime service executor``).
"""

from runtime.service.executor.app import main
from runtime.service.executor.asyncexec import AsyncExecutor
from runtime.service.executor.dispatcher import Dispatcher
from runtime.service.executor.request import ExecutionRequest, Outcome
from runtime.service.executor.runner import StudentRunner
from runtime.service.executor.sync import SyncExecutor

__all__ = [
    "AsyncExecutor",
    "Dispatcher",
    "ExecutionRequest",
    "Outcome",
    "StudentRunner",
    "SyncExecutor",
    "main",
]
