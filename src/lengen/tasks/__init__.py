"""Tasks: seeded batch samplers that record what every answer depends on."""

from lengen.tasks import (  # noqa: F401  (registers the tasks)
    addition,
    aliases,
    associative_recall,
    binary_addition,
    binary_multiplication,
    compute_sqrt,
    copy,
    cycle_navigation,
    duplicate_string,
    even_pairs,
    filter_copy,
    filter_reverse,
    interlocked_pairing,
    missing_duplicate,
    modular_arithmetic,
    odds_first,
    offset_parity,
    parity_check,
    planted,
    reverse,
    solve_equation,
    sort,
    sparse_parity,
    squeeze,
    squeeze_reverse,
    stable_partition,
    stack_manipulation,
    successor_walk,
    text,
    variable_tracking,
)
from lengen.tasks.base import IGNORE, TASKS, Batch, Task, make_task, register_task

__all__ = ["IGNORE", "TASKS", "Batch", "Task", "make_task", "register_task"]
