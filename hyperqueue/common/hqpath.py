"""Where the `hq` executable of this installation is (for processes hq starts itself: the
worker's `hq task notify`, automatic allocation's worker scripts, `worker deploy-ssh`)."""

from __future__ import annotations

import os
import shutil
import sys


def hq_executable() -> str:
    """The running `hq` when this process was started as `hq`, else `hq` from PATH, else the
    absolute form of argv[0]."""
    argv0 = sys.argv[0] if sys.argv else ""
    if argv0 and os.path.basename(argv0) == "hq" and os.path.exists(argv0):
        return os.path.abspath(argv0)
    return shutil.which("hq") or os.path.abspath(argv0 or "hq")
