"""Tasks: seeded batch samplers that record what every answer depends on."""

from lengen.tasks import offset_parity, planted, sparse_parity  # noqa: F401  (registers the tasks)
from lengen.tasks.base import IGNORE, TASKS, Batch, Task, make_task, register_task

__all__ = ["IGNORE", "TASKS", "Batch", "Task", "make_task", "register_task"]
