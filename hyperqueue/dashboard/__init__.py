"""`hq dashboard`: a terminal dashboard of jobs, tasks, workers and allocation queues, with time
travel over the event history (live from a server's event stream, or offline from a journal).

* `model`  -- the pure dashboard model: folds journal/stream records incrementally (jobs, task
              states and counts, workers and their hardware overviews, allocation queues) and a
              time index to compute the view "as of time T" (snapshots + replay forward).
* `render` -- pure text rendering of the screens (tables, bars, charts): `--once` and the panes
              of the interactive app.
* `source` -- where records come from: a server's event stream (blocking client in a thread,
              resynchronised when the server drops a lagging subscriber) or a journal file.
* `app`    -- the textual application (the only module that imports textual; an optional
              extra: `pip install 'hyperqueue[dashboard]'`).

Layer: a client-side shell beside the CLI. May import core, autoalloc (pure), journal.format,
protocol, client, common, errors and version; never the server, the worker, trio or the CLI.
"""
