"""What runs inside a task: the entry point of Python function tasks (`hyperqueue.task.function`:
upstream's `task_main` and `PythonEnv`) and the Python API's task objects (`task.task`).

Layer: runs in task processes and in the client; imports only the standard library, cloudpickle
and small pure parts of hyperqueue; never trio, click/rich, the server, the worker or the CLI.
"""
