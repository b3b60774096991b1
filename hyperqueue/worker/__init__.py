"""The hq worker: a trio shell that connects to the server and runs what it assigns.

* `app`         -- connect, register (with retry), heartbeats, task updates, reconnect.
* `runner`, `spawner`, `fastspawn`, `reaper` -- task processes in their own process groups.
* `allocator`   -- which resource indices a task gets (pure).
* `streamer`    -- the worker's side of `--stream`.
* `hwdetect`    -- CPUs, memory and GPUs of this machine; `batchdetect` -- the PBS/Slurm
                   allocation it runs in (reads the environment, runs qstat/scontrol).

Layer: a shell. May import core, protocol, transport, streaming, common; never the server,
the journal, the client, the CLI or `local`.
"""
