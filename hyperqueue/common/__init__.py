"""Small helpers shared by several layers (stdlib only), in two kinds:

* pure (no OS, no clock; the pure layers `protocol`, `batch`, `autoalloc` use them):
  `durations` (upstream's duration syntax), `selectors` (`all`, `last`, id ranges).
* blocking OS helpers for the shells and the CLI/client: `serverdir` (the server directory:
  instance dirs, `hq-current`, `access.json`, read and written with checked permissions),
  `rlimit` (raising the open-file limit), `ratelimit` (log lines per period; reads the clock),
  `waits` (bounded wait slices; its `sleep` imports trio lazily, for the worker).

Layer: below protocol, next to the core. May import `core`, `errors`, `version`; never cbor2,
nacl, click or any package above it. tests/test_layering.py keeps the pure part pure.
"""
