"""The click flavour for this run.

rich-click renders `--help` beautifully but importing it (and rich) costs ~60 ms, which every
short-lived client call would pay. Plain click parses the same definitions, so rich-click is loaded
only when help is being shown.
"""

import sys

_args = sys.argv[1:]
if not _args or "--help" in _args or "-h" in _args:
    import rich_click as click

    click.rich_click.USE_MARKDOWN = False
else:
    import click  # noqa: F401

__all__ = ["click"]
