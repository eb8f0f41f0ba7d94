"""The executor service: runs student code against the robot (docs/contract.md, Shape).

- :class:`ExecutionRequest`: one call, or a periodic call whose timeout is its period.
- :class:`SyncExecutor`: ``*_setup`` / ``*_main`` in the main thread, interrupted by signals.
- :class:`AsyncExecutor`: ``Robot.run`` actions (asyncio tasks and threads).
- :class:`Dispatcher`: modes, RPC (``set_mode``, ``get_mode``, ``upload``), safety.
- :func:`main`: the service (``runtime service executor``).
"""

from runtime.service.executor.app import main
from runtime.service.executor.asyncexec import AsyncExecutor
from runtime.service.executor.dispatcher import Dispatcher
from runtime.service.executor.request import ExecutionRequest, Outcome
from runtime.service.executor.sync import SyncExecutor

__all__ = [
    "AsyncExecutor",
    "Dispatcher",
    "ExecutionRequest",
    "Outcome",
    "SyncExecutor",
    "main",
]
