"""Log records in upstream's format (env_logger as upstream configures it), written without
importing `logging` (every short-lived client command may print some).

`2025-01-31T10:20:30Z WARN <message>`; with debug logging (`--debug`, `RUST_LOG=...debug...`)
`[2025-01-31T10:20:30.123Z WARN  <module>] <message>`. The one writer of client records: the
command context (`context.log`) and the printers (`Printer.log`) both use it.
"""

from __future__ import annotations

import sys
import time

#: upstream's level names (env_logger): WARNING -> WARN, CRITICAL -> ERROR.
LEVEL_NAMES = {"WARNING": "WARN", "CRITICAL": "ERROR", "NOTSET": "TRACE"}


def log_line(level: str, message: str, module: str = "hyperqueue", created: float | None = None,
             debug: bool = False) -> str:
    """One record as a line (no newline)."""
    level = LEVEL_NAMES.get(level, level)
    now = time.time() if created is None else created
    ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
    if debug:
        return f"[{ts}.{int(now * 1000) % 1000:03d}Z {level:<5} {module}] {message}"
    return f"{ts}Z {level} {message}"


def write(level: str, message: str, debug: bool = False,
          module: str = "hyperqueue::client") -> None:
    """Writes one client record to stderr (every output mode); DEBUG only with `debug`."""
    if level == "DEBUG" and not debug:
        return
    sys.stderr.write(log_line(level, message, module, debug=debug) + "\n")
    sys.stderr.flush()
