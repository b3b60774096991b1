"""Authenticated encryption of frames (XSalsa20-Poly1305) with implicit counter nonces.

Pure. The nonce is never sent: each direction counts its frames from 0 and both ends derive
the 24-byte nonce from that counter. A replayed, reordered, dropped, truncated or altered
frame therefore fails authentication, and a nonce never repeats for a key and direction.
Callers must use a fresh key per connection and direction (see `handshake`), because the
counters restart at 0 on every connection.
"""

from __future__ import annotations

from collections.abc import Iterable

from nacl.bindings import (
    crypto_secretbox,
    crypto_secretbox_KEYBYTES,
    crypto_secretbox_MACBYTES,
    crypto_secretbox_open,
)
from nacl.exceptions import CryptoError

from hyperqueue.protocol.errors import ProtocolError
from hyperqueue.protocol.framing import MAX_FRAME, encode_frames

KEY_SIZE = crypto_secretbox_KEYBYTES

_AUTH_FAILED = "frame failed authentication (tampered, replayed, reordered or wrong key)"
_POISONED = "channel is unusable after a frame failed authentication"


class _Channel:
    overhead: int  # bytes a sealed frame is longer than its plaintext

    def seal(self, plaintext: bytes) -> bytes:
        raise NotImplementedError

    def seal_frames(self, payloads: Iterable[bytes]) -> bytes:
        """Seal `payloads` in order and return them as one buffer of length-prefixed frames.

        Raises:
            ProtocolError: a payload is too big for a frame. All sizes are checked before any
                payload is sealed, so the send counter stays in step with the peer.
        """
        payloads = list(payloads)
        limit = MAX_FRAME - self.overhead
        for payload in payloads:
            if len(payload) > limit:
                raise ProtocolError(f"message of {len(payload)} bytes exceeds the maximum of {limit}")
        return encode_frames([self.seal(payload) for payload in payloads])


class SealedChannel(_Channel):
    """Seals outgoing and opens incoming frames of one connection.

    Not thread-safe; frames must be opened in the order they were sealed by the peer.
    """

    overhead = crypto_secretbox_MACBYTES

    def __init__(self, send_key: bytes, recv_key: bytes) -> None:
        if len(send_key) != KEY_SIZE or len(recv_key) != KEY_SIZE:
            raise ValueError(f"secretbox keys must be {KEY_SIZE} bytes")
        self._send_key = bytes(send_key)
        self._recv_key = bytes(recv_key)
        self._send_counter = 0
        self._recv_counter = 0
        self._poisoned = False

    def seal(self, plaintext: bytes) -> bytes:
        """Return the MAC and ciphertext of `plaintext` under the next send nonce.

        Raises:
            ProtocolError: the channel was poisoned by an earlier authentication failure.
        """
        if self._poisoned:
            raise ProtocolError(_POISONED)
        # A 64-bit counter cannot wrap in practice; zero-extending it gives the 24-byte nonce.
        nonce = self._send_counter.to_bytes(24, "little")
        self._send_counter += 1
        return crypto_secretbox(plaintext, nonce, self._send_key)

    def open(self, ciphertext: bytes) -> bytes:
        """Authenticate and decrypt the next frame from the peer.

        Raises:
            ProtocolError: the frame is not the next one the peer sealed with the matching
                key; the channel is poisoned and every later call raises as well.
        """
        if self._poisoned:
            raise ProtocolError(_POISONED)
        nonce = self._recv_counter.to_bytes(24, "little")
        try:
            plaintext = crypto_secretbox_open(ciphertext, nonce, self._recv_key)
        except CryptoError:
            # Once the streams disagree they never agree again; refuse to limp on.
            self._poisoned = True
            raise ProtocolError(_AUTH_FAILED) from None
        self._recv_counter += 1
        return plaintext


class PlainChannel(_Channel):
    """Pass-through channel with SealedChannel's interface, for when authentication is disabled."""

    overhead = 0

    def seal(self, plaintext: bytes) -> bytes:
        """Return `plaintext` unchanged."""
        return plaintext

    def open(self, ciphertext: bytes) -> bytes:
        """Return `ciphertext` unchanged."""
        return ciphertext
