"""The kinds of a worker's task update `[kind, job, task, instance, error | None]`.

One definition for the worker that sends them, the wire (`protocol.messages.TaskUpdates`)
that validates them and the reactor (`reactor.task_updates`) that applies them. A module of its
own so the wire does not import the model (`hq job list` start-up).
"""

UPDATE_RUNNING, UPDATE_FINISHED, UPDATE_FAILED = 0, 1, 2
UPDATE_KINDS = (UPDATE_RUNNING, UPDATE_FINISHED, UPDATE_FAILED)
