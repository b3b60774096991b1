"""The click flavour of this run: `from .flavour import click`.

rich-click renders `--help` beautifully but importing it (and rich) costs ~60 ms, which every
short-lived client call would pay. Plain click parses the same definitions, so `main()` chooses
rich-click only when help is being shown (`choose(wants_help(argv))`), before any command module
is imported. A command module imported without `main()` (a test, a tool) gets plain click.
"""

from __future__ import annotations

_rich = False
_chosen = None


def wants_help(argv: list[str]) -> bool:
    """No arguments at all (the usage page), or `--help` / `-h` anywhere."""
    return not argv or "--help" in argv or "-h" in argv


def choose(rich: bool) -> None:
    """Picks the flavour (imported on first use, so the click-free fast path stays so); call
    before the first command module is imported."""
    global _rich, _chosen
    _rich, _chosen = rich, None


def _load():
    global _chosen
    if _rich:
        import rich_click as flavour

        flavour.rich_click.USE_MARKDOWN = False
    else:
        import click as flavour
    _chosen = flavour
    return flavour


def __getattr__(name: str):
    if name == "click":
        return _chosen or _load()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
