"""Pure byte-in / byte-out wire modules shared by the server, workers and clients.

* `framing`   -- u32 length prefix; the length is checked before the body is read.
* `secretbox` -- sealed frames (XSalsa20-Poly1305, counter nonces per direction).
* `handshake` -- the sans-IO challenge-response that binds version and role.
* `messages`  -- typed messages by direction and their validating CBOR codec; `cborshape`
  bounds a frame's CBOR before decoding; `errors` are the wire's error values.

Layer: sans-IO above the core. May import `core`, the pure part of `common`, cbor2 and nacl;
never trio/anyio or a shell (transport, server, worker, client, cli). The transports drive it.
"""
