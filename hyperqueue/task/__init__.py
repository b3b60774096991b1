"""What runs inside a task: the entry point of Python function tasks (`hyperqueue.task.function`)."""
