"""The state of one `hq` run: global options (accepted before or after the subcommand), the
server directory they select and the printer of the output mode, chosen once.

Every command module reads these from here (never from `main`), so nothing imports `main` and
the command modules import no each other in circles.
"""

from __future__ import annotations

import os
import sys

from .output import Printer, make_printer

GLOBAL_FLAGS = {"--server-dir": "server_dir", "--output-mode": "output_mode",
                "--colors": "colors"}
OUTPUT_MODES = ("cli", "json", "quiet")


class GlobalOptionError(Exception):
    """A bad global option, found before click is loaded; shown as click's usage error."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


class Globals:
    server_dir: str | None = None
    output_mode: str = "cli"
    colors: str = "auto"
    debug: bool = False
    printer: Printer | None = None


G = Globals()


def printer() -> Printer:
    """The printer of this run's output mode (made once, on first use)."""
    if G.printer is None or G.printer.mode != G.output_mode:
        G.printer = make_printer(G.output_mode, G.colors)
    return G.printer


def server_root() -> str:
    from ..common.serverdir import resolve_server_dir

    return resolve_server_dir(G.server_dir)


def extract_globals(argv: list[str]) -> list[str]:
    """Removes global options from anywhere before `--` and stores them in `G`."""
    out = []
    i = 0
    G.server_dir = os.environ.get("HQ_SERVER_DIR") or None
    G.output_mode = os.environ.get("HQ_OUTPUT_MODE") or "cli"
    G.debug = bool(os.environ.get("HQ_DEBUG"))
    G.printer = None
    deploy = False  # `worker deploy-ssh HOSTFILE ARGS...`: ARGS are forwarded verbatim
    while i < len(argv):
        a = argv[i]
        if a == "--" or (deploy and not a.startswith("-")):
            out.extend(argv[i:])
            break
        deploy = deploy or a == "deploy-ssh"
        name, eq, value = a.partition("=")
        if name in GLOBAL_FLAGS:
            if not eq:
                if i + 1 >= len(argv):
                    raise GlobalOptionError(f"Option '{name}' requires an argument.")
                value = argv[i + 1]
                i += 1
            setattr(G, GLOBAL_FLAGS[name], value)
        elif a == "--debug":
            G.debug = True
        else:
            out.append(a)
        i += 1
    if G.output_mode not in OUTPUT_MODES:
        raise GlobalOptionError(f"'{G.output_mode}' is not one of {', '.join(OUTPUT_MODES)}",
                                "'--output-mode'")
    if G.colors not in ("auto", "always", "never"):
        raise GlobalOptionError(f"'{G.colors}' is not one of auto, always, never", "'--colors'")
    return out


def setup_logging(level=None) -> None:
    import logging

    level = level or (logging.DEBUG if G.debug else logging.INFO)
    fmt = "%(asctime)s %(levelname)s %(message)s"
    logging.basicConfig(level=level, format=fmt, datefmt="%Y-%m-%dT%H:%M:%SZ",
                        stream=sys.stderr)


def connect():
    """A blocking client for the current server directory (raises HqError if none)."""
    from ..client.blocking import BlockingClient

    return BlockingClient(server_root())
