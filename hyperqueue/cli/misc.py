"""`hq doc` and `hq generate-completion`."""

from __future__ import annotations

import sys

from ..version import __version__
from .flavour import click

DOC_BASE = "https://it4innovations.github.io/hyperqueue"
# page -> path in the documentation site; aliases as upstream accepts them
DOC_PAGES = {
    "job": "jobs/jobs/",
    "taskarray": "jobs/arrays/",
    "resources": "jobs/resources/",
    "worker": "deployment/worker/",
    "autoalloc": "deployment/allocation/",
    "python-api": "python/",
    "cheatsheet": "cheatsheet/",
    "changelog": "changelog/",
    "faq": "faq/",
}
DOC_ALIASES = {"jobs": "job", "tasks": "job", "workers": "worker", "pbs": "autoalloc",
               "slurm": "autoalloc", "python": "python-api"}


def doc_url(page: str | None) -> str:
    base = f"{DOC_BASE}/v{__version__}/"
    if page is None:
        return base
    return base + DOC_PAGES[DOC_ALIASES.get(page, page)]


@click.command()
@click.argument("page", required=False,
                type=click.Choice(list(DOC_PAGES) + list(DOC_ALIASES)))
@click.option("--open", "open_", is_flag=True, help="Open the page in a web browser")
def doc(page, open_):
    """Print (or open) the address of HyperQueue's documentation."""
    url = doc_url(page)
    click.echo(url)
    if open_:
        import webbrowser

        if not webbrowser.open(url):
            raise click.ClickException("Cannot open a web browser")


SHELLS = ("bash", "elvish", "fish", "powershell", "zsh")


@click.command("generate-completion")
@click.argument("shell", type=click.Choice(SHELLS))
def generate_completion(shell):
    """Print a shell completion script for `hq` (e.g. `hq generate-completion bash > ~/.hq.bash`)."""
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    if cls is None:
        raise click.ClickException(f"completion for {shell} is not available in this version; "
                                   "bash, fish and zsh are")
    root = click.get_current_context().find_root().command  # the whole `hq` tree
    comp = cls(root, {}, "hq", "_HQ_COMPLETE")
    sys.stdout.write(comp.source())
    sys.stdout.flush()
    hint = {"bash": "source it from ~/.bashrc", "zsh": "source it from ~/.zshrc",
            "fish": "save it as ~/.config/fish/completions/hq.fish"}[shell]
    click.echo(f"Completion script for {shell} printed; {hint}", err=True)
