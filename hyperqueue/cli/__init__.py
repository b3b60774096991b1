"""The `hq` command line, thin over the client library: each command parses its options (click,
or the click-free fast path of `job list`), calls `hyperqueue.client`, and hands the result to
the printer of the output mode (`output.py`: cli / json / quiet, chosen once in `context.py`).

Adding a command: a click function in its noun's module (a new noun: one line in
`main.COMMANDS`), a call in `client/calls.py` if it asks the server something new, and one
result method on each printer in `output.py`.
"""
