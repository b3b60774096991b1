"""Process limits for long-lived hq processes (stdlib only)."""

from __future__ import annotations

import logging

log = logging.getLogger("hq")


def raise_open_file_limit() -> tuple[int, int] | None:
    """Raises the soft RLIMIT_NOFILE to the hard limit (a server holds a descriptor per
    connection; a worker several per running task). Returns the new (soft, hard), or None
    where the platform has no such limit. Never raises: a refusal is logged at DEBUG."""
    try:
        import resource
    except ImportError:  # not on this platform
        return None
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY and soft != resource.RLIM_INFINITY and soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        elif hard == resource.RLIM_INFINITY and soft != hard:
            # An unlimited hard limit: ask for a large finite one (the kernel caps it).
            for want in (1 << 20, 1 << 16):
                if want > soft:
                    try:
                        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
                        soft = want
                        break
                    except (ValueError, OSError):
                        continue
        return soft, hard
    except (ValueError, OSError) as e:
        log.debug("Cannot raise the open-file limit: %s", e)
        return None
