"""The `hq` command line, thin over the client library: each command parses its options (click,
or the click-free fast path of `job list`), calls `hyperqueue.client`, and hands the result to
the printer of the output mode (`output.py`: cli / json / quiet, chosen once in `context.py`).

Adding a command: a click function in its noun's module (a new noun: one line in
`main.COMMANDS`), a call in `client/calls.py` if it asks the server something new, and one
result method on each printer in `output.py`.

Layer: the top. Imports the client side (`client`, `common`, `core`, `protocol`, `errors`);
the shells a command starts (server, worker, `local`) or the files it reads (journal, report,
streaming) only from that command's module (tests/test_layering.py). Nothing imports the CLI.
"""
