"""Helpers for rogue servers in tests: a server directory whose access record points at a
socket of the test's own, and the server side of a real handshake over a blocking socket."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator

from hyperqueue.common import serverdir
from hyperqueue.protocol.framing import FrameDecoder, encode_frames
from hyperqueue.protocol.handshake import Handshake


def make_server_dir(root: str, client_port: int, worker_port: int) -> dict:
    """Writes an instance with an access record for 127.0.0.1 under `root` (made current) and
    returns the record (its keys are real: clients and workers pass the handshake)."""
    inst = serverdir.create_instance_dir(root)
    access = serverdir.generate_access("127.0.0.1", client_port, worker_port)
    serverdir.write_access_file(os.path.join(inst, serverdir.ACCESS_FILE), access)
    serverdir.point_current_link(root, inst)
    return access


def sealed_messages(c: socket.socket, hs: Handshake,
                    stop: threading.Event | None = None) -> Iterator[bytes]:
    """Runs `hs` (this side's handshake, not started) over `c`, then yields every message the
    peer sends, opened; ends when the peer hangs up or `stop` is set."""
    c.sendall(encode_frames(hs.start()))
    decoder = FrameDecoder()
    while stop is None or not stop.is_set():
        data = c.recv(65536)
        if not data:
            return
        decoder.feed(data)
        for payload in decoder.frames():
            if not hs.done:
                reply = hs.receive(payload)
                if reply:
                    c.sendall(encode_frames(reply))
                continue
            yield hs.channel.open(payload)
