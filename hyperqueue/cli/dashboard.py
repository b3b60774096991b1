"""`hq dashboard [stream | replay JOURNAL] [--once]`: the terminal dashboard (textual, an
optional extra), or a static text snapshot of its screens."""

from __future__ import annotations

import sys

from .context import server_root
from .flavour import click

MISSING_TEXTUAL = ("`hq dashboard` needs the optional package textual: install it with "
                   "pip install 'hyperqueue[dashboard]' (or use --once for a text snapshot)")

ONCE_HELP = "Print a static text snapshot of the screens and exit (no textual needed)"


def _need_textual() -> None:
    from ..errors import HqError

    try:
        import textual  # noqa: F401
    except ImportError:
        raise HqError(MISSING_TEXTUAL) from None


def _print(timeline, replay: bool = False) -> None:
    import shutil

    from ..dashboard.render import snapshot_text

    width = shutil.get_terminal_size((120, 40)).columns
    sys.stdout.write(snapshot_text(timeline, width=max(80, width), replay=replay))
    sys.stdout.flush()


def _stream(once: bool) -> None:
    root = server_root()
    if once:
        from ..dashboard.model import Timeline
        from ..dashboard.source import fetch_history

        tl = Timeline()
        tl.extend(fetch_history(root))
        _print(tl)
        return
    _need_textual()
    from ..client.blocking import BlockingClient
    from ..dashboard.app import DashboardApp, run
    from ..dashboard.source import LiveSource

    BlockingClient(root).close()  # a clear error now if there is no server
    run(DashboardApp(source=LiveSource(root), server_dir=root))


@click.group(invoke_without_command=True)
@click.option("--once", is_flag=True, help=ONCE_HELP)
@click.pass_context
def dashboard(ctx, once):
    """Live dashboard of jobs, tasks, workers and allocation queues (default: stream)."""
    if ctx.invoked_subcommand is None:
        _stream(once)


@dashboard.command()
@click.option("--once", is_flag=True, help=ONCE_HELP)
@click.pass_context
def stream(ctx, once):
    """Connect to the server: its history so far, then live events."""
    _stream(once or bool(ctx.parent.params.get("once")))


@dashboard.command()
@click.argument("journal", type=click.Path(dir_okay=False))
@click.option("--once", is_flag=True, help=ONCE_HELP)
@click.pass_context
def replay(ctx, journal, once):
    """Browse a journal file offline (read-only)."""
    from ..dashboard.model import Timeline
    from ..dashboard.source import read_journal

    once = once or bool(ctx.parent.params.get("once"))
    if not once:
        _need_textual()
    records, warning = read_journal(journal)
    if warning:
        sys.stderr.write(f"Warning: {warning}\n")
    if once:
        tl = Timeline()
        tl.extend(records)
        _print(tl, replay=True)
        return
    from ..dashboard.app import DashboardApp, run

    run(DashboardApp(records=records, replay_path=journal, notice=warning))
