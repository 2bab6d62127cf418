"""Where evaluations run: in-process, a local process pool, or a Dask cluster.

All executors implement :class:`blockqnn.execution.base.Executor`; the search loop does not
know which one it drives.
"""

from blockqnn.execution.base import Executor, ExecutorLost, Outcome
from blockqnn.execution.inline import InlineExecutor
from blockqnn.execution.local import ProcessExecutor

__all__ = ["Executor", "ExecutorLost", "InlineExecutor", "Outcome", "ProcessExecutor"]
