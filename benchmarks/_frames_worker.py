"""`hq worker start ...` with a frame counter, for the `crypto` workload of `run.py`.

    python _frames_worker.py STATS.json [hq arguments...]

Runs the hq CLI in this process after wrapping `SealedChannel.seal` and `SealedChannel.open`
so that the plaintext size of every frame the worker seals (worker -> server) or opens
(server -> worker) is recorded; the sizes are written to STATS.json when the process exits
(the worker exits gracefully on SIGTERM). Every frame is sealed once and opened once, so these
lists describe all the encryption work of the worker connection, on both ends.
"""

from __future__ import annotations

import atexit
import json
import sys


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    stats_path = sys.argv.pop(1)
    sys.argv[0] = "hq"

    from hyperqueue.protocol import secretbox

    sealed: list[int] = []
    opened: list[int] = []
    orig_seal = secretbox.SealedChannel.seal
    orig_open = secretbox.SealedChannel.open

    def seal(self, plaintext):
        sealed.append(len(plaintext))
        return orig_seal(self, plaintext)

    def open_(self, ciphertext):
        plaintext = orig_open(self, ciphertext)
        opened.append(len(plaintext))
        return plaintext

    secretbox.SealedChannel.seal = seal
    secretbox.SealedChannel.open = open_

    def dump():
        with open(stats_path, "w") as f:
            json.dump({"sealed": sealed, "opened": opened}, f)

    atexit.register(dump)

    from hyperqueue.cli.main import main as hq_main

    return hq_main()


if __name__ == "__main__":
    sys.exit(main())
