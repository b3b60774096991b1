"""The state of one `hq` run: global options (accepted before or after the subcommand), the
server directory they select and the printer of the output mode, chosen once.

Every command module reads these from here (never from `main`), so nothing imports `main` and
the command modules import no each other in circles.
"""

from __future__ import annotations

import os
import sys

from . import logs
from .logs import log_line
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
        G.printer = make_printer(G.output_mode, G.colors, debug_logging())
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


def debug_logging() -> bool:
    """`--debug` (or HQ_DEBUG), or RUST_LOG containing `debug`, as upstream."""
    return G.debug or "debug" in os.environ.get("RUST_LOG", "")


def log(level: str, message: str) -> None:
    """Writes one client log record to stderr (every output mode, as upstream's env_logger);
    `level`: ERROR, WARN, INFO or DEBUG (DEBUG only with debug logging)."""
    logs.write(level, message, debug_logging())


def log_info(message: str) -> None:
    log("INFO", message)


def log_warn(message: str) -> None:
    log("WARN", message)


def log_error(message: str) -> None:
    log("ERROR", message)


def setup_logging(level=None) -> None:
    """Python `logging` (server, worker, alloc) on stderr in upstream's record format."""
    import logging

    debug = debug_logging()
    level = level or (logging.DEBUG if debug else logging.INFO)

    class UpstreamFormatter(logging.Formatter):
        def format(self, record):
            text = log_line(record.levelname, record.getMessage(), record.name,
                            record.created, debug)
            if record.exc_info:
                text += "\n" + self.formatException(record.exc_info)
            return text

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(UpstreamFormatter())
    root = logging.getLogger()
    if not any(getattr(h, "hq_upstream", False) for h in root.handlers):
        handler.hq_upstream = True
        root.addHandler(handler)
    root.setLevel(level)


def connect():
    """A blocking client for the current server directory (raises HqError if none)."""
    from ..client.blocking import BlockingClient

    return BlockingClient(server_root())
