from sdelab.tasks.registry import builtin_tasks, get_task, load_task_file
from sdelab.tasks.task import Example, Task, subset

__all__ = ["Example", "Task", "builtin_tasks", "get_task", "load_task_file", "subset"]
