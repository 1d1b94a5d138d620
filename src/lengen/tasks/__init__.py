"""Tasks: seeded batch samplers that record what every answer depends on."""

from lengen.tasks import (  # noqa: F401  (registers the tasks)
    addition,
    copy,
    filter_copy,
    filter_reverse,
    offset_parity,
    planted,
    reverse,
    sort,
    sparse_parity,
    squeeze,
    squeeze_reverse,
    stable_partition,
    successor_walk,
    text,
)
from lengen.tasks.base import IGNORE, TASKS, Batch, Task, make_task, register_task

__all__ = ["IGNORE", "TASKS", "Batch", "Task", "make_task", "register_task"]
