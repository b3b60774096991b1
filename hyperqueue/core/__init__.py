"""Pure core: no I/O, no clock, no event loop (the lowest layer; it imports only itself).

Every job, task and worker state transition and the scheduler, as functions over `state.Core`:

* `model`    -- records and state enums with their transition tables (an illegal move raises).
* `state`    -- the registries (jobs, workers, ready queues) and `sanity_check()`.
* `reactor`  -- reactions `(core, outbox, ..., now)`: submit, cancel, workers, task updates.
* `scheduler`-- `schedule(core, outbox, now)`: one deterministic pass per wake-up.
* `outbox`   -- what the core wants the shells to send, taken after each reaction.
* `events`   -- every journal event, one class each; `restore` folds them back into a core.
               The journal batches plain task starts/finishes into `task-progress` range
               records (`events.journal_records`; `expand_record` gives the per-task ones).
* `compact`  -- finished tasks without records: runs of ids per (times, worker, instance).
* `resources`, `ranges`, `placeholders`, `views`, `limits`, `graph`, `updates`: the value types,
  the id sets, the limits on outside input and the helpers the reactions share.

Imports: stdlib only (no trio, anyio, cbor2, nacl, os, time, socket, subprocess) and nothing
else from hyperqueue; `now` is always an argument. Everything above may import the core.
"""
