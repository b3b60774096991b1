"""Connection handshake: a sans-IO challenge-response proving both ends hold the same key.

Pure. Both ends run the same state machine concurrently:

1. each sends a plaintext CBOR hello: protocol version, hq version, its role, whether it
   authenticates, and 32 random challenge bytes;
2. on the peer's hello each checks version, role and auth mode, derives per-connection,
   per-direction session keys from the shared key, its role and both challenges, and sends
   a sealed proof ``b"hq-proof" + role + peer_challenge`` (counter 0 of its send direction);
3. on the peer's proof each checks it opens with the receive key and answers its own
   challenge. The channel then carries on with the same counters.

The roles bind a key to a port: a client ("hq-client" <-> "hq-server") cannot talk to the
worker port ("worker" <-> "server"), and a reflected hello is rejected because it carries
our own role. Fresh challenges make every connection's session keys new, so counter nonces
starting at 0 never repeat for a key. Without a key both ends skip the proof and use a
PlainChannel.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import cbor2
# libsodium's BLAKE2b and constant-time compare (already loaded for the secretbox): the same
# digests as hashlib.blake2b, without importing hashlib/hmac, whose OpenSSL module costs every
# short-lived client ~3 ms of start-up.
from nacl.bindings import crypto_generichash_blake2b_salt_personal as _blake2b
from nacl.bindings import sodium_memcmp

from hyperqueue.protocol.errors import HandshakeError, ProtocolError, shown
from hyperqueue.protocol.secretbox import KEY_SIZE, PlainChannel, SealedChannel

PROTOCOL_VERSION = 1

ROLE_CLIENT = "hq-client"
ROLE_CLIENT_SERVER = "hq-server"
ROLE_WORKER = "worker"
ROLE_WORKER_SERVER = "server"

# Hellos and proofs are tiny; shells decode handshake frames with this limit so an
# unauthenticated peer cannot make us buffer a large frame.
MAX_HANDSHAKE_FRAME = 4096

CHALLENGE_SIZE = 32
# Bounds on the peer's hello fields, checked before any of them is used or shown.
MAX_PROTO = 2**32 - 1
MAX_VERSION_LEN = 64  # an hq version string ("0.27.0", "1.0.0-dev+abc"); printable ASCII
MAX_ROLE_LEN = 64
_PROOF_TAG = b"hq-proof"
_KDF_PERSON = b"hq-session-key"  # blake2b personalisation: keys derived here are for nothing else

_AUTH_FAILED = (
    "Authentication failed: the peer does not have the same secret key "
    "(wrong or outdated access file?)"
)

_EXPECT_HELLO = "expect-hello"
_EXPECT_PROOF = "expect-proof"
_DONE = "done"
_FAILED = "failed"


def _role_bytes(role: str) -> bytes:
    # Length-prefixed so that the concatenation of two roles is unambiguous.
    data = role.encode()
    return bytes([len(data)]) + data


def _session_key(shared_key: bytes, sender: str, receiver: str, sender_challenge: bytes,
                 receiver_challenge: bytes) -> bytes:
    data = (b"hq-v%d" % PROTOCOL_VERSION + _role_bytes(sender) + _role_bytes(receiver)
            + sender_challenge + receiver_challenge)
    return _blake2b(data, digest_size=KEY_SIZE, key=shared_key, person=_KDF_PERSON)


class Handshake:
    """One end of the handshake of one connection.

    Args:
        role: this end's role, e.g. ROLE_CLIENT.
        peer_role: the role the peer must announce, e.g. ROLE_CLIENT_SERVER.
        key: the shared 32-byte secret, or None to run without authentication (the peer
            must then run without it too).
        hq_version: this hq's version, shown in version-mismatch errors.
        random: source of the challenge bytes (injectable for tests).

    Usage: send the payloads returned by `start()`, then feed every received payload to
    `receive()` and send what it returns, until `done`. When `done` becomes true every
    payload this end must send has been returned. Payloads are not length-framed.
    """

    def __init__(self, *, role: str, peer_role: str, key: bytes | None, hq_version: str,
                 random: Callable[[int], bytes] = os.urandom) -> None:
        if key is not None and len(key) != KEY_SIZE:
            raise ValueError(f"the secret key must be {KEY_SIZE} bytes")
        self._role = role
        self._peer_role = peer_role
        self._key = key
        self._hq_version = hq_version
        self._challenge = random(CHALLENGE_SIZE)
        self._started = False
        self._state = _EXPECT_HELLO
        self._channel: SealedChannel | PlainChannel | None = None
        self.peer_version: str | None = None  # the peer's hq version, once its hello arrived

    @property
    def done(self) -> bool:
        """True once the peer is verified and `channel` is ready."""
        return self._state == _DONE

    @property
    def channel(self) -> SealedChannel | PlainChannel:
        """The channel for the rest of the connection (only once `done`)."""
        if self._state != _DONE:
            raise RuntimeError("handshake is not finished")
        assert self._channel is not None
        return self._channel

    def start(self) -> list[bytes]:
        """Return the payloads to send first (our hello).

        Call it at most once, and not after `receive` (which then sends the hello itself).
        """
        if self._started:
            raise RuntimeError("handshake already started")
        self._started = True
        hello = {
            "proto": PROTOCOL_VERSION,
            "version": self._hq_version,
            "role": self._role,
            "auth": self._key is not None,
            "challenge": self._challenge,
        }
        return [cbor2.dumps(hello)]

    def receive(self, payload: bytes) -> list[bytes]:
        """Feed one payload received from the peer; return the payloads to send in reply.

        If `start()` was not called yet, the reply begins with our hello.

        Raises:
            HandshakeError: the peer is incompatible, unauthenticated or misbehaving; the
                handshake is failed and every later call raises too.
        """
        if self._state == _FAILED:
            raise HandshakeError("handshake already failed")
        try:
            out = [] if self._started else self.start()
            if self._state == _EXPECT_HELLO:
                out += self._on_hello(payload)
            elif self._state == _EXPECT_PROOF:
                self._on_proof(payload)
            else:
                raise HandshakeError("unexpected handshake message after the handshake finished")
        except HandshakeError:
            self._state = _FAILED
            raise
        return out

    def _on_hello(self, payload: bytes) -> list[bytes]:
        hello = _parse_hello(payload)
        self.peer_version = hello["version"]
        if hello["proto"] != PROTOCOL_VERSION:
            raise HandshakeError(
                f"Protocol version mismatch: peer speaks {hello['proto']}, this hq speaks "
                f"{PROTOCOL_VERSION} (peer hq version {hello['version']}, this hq {self._hq_version})"
            )
        if hello["role"] != self._peer_role:
            raise HandshakeError(f"Unexpected peer role {shown(hello['role'])}, "
                                 f"expected {self._peer_role!r}")
        if hello["auth"] != (self._key is not None):
            if self._key is None:
                raise HandshakeError(
                    "Authentication mismatch: the peer requires authentication but this side has it disabled"
                )
            raise HandshakeError(
                "Authentication mismatch: this side requires authentication but the peer has it disabled"
            )
        if self._key is None:
            self._channel = PlainChannel()
            self._state = _DONE
            return []
        peer_challenge = hello["challenge"]
        self._channel = SealedChannel(
            send_key=_session_key(self._key, self._role, self._peer_role, self._challenge, peer_challenge),
            recv_key=_session_key(self._key, self._peer_role, self._role, peer_challenge, self._challenge),
        )
        self._state = _EXPECT_PROOF
        return [self._channel.seal(_PROOF_TAG + self._role.encode() + peer_challenge)]

    def _on_proof(self, payload: bytes) -> None:
        assert isinstance(self._channel, SealedChannel)
        try:
            proof = self._channel.open(payload)
        except ProtocolError:
            raise HandshakeError(_AUTH_FAILED) from None
        expected = _PROOF_TAG + self._peer_role.encode() + self._challenge
        if len(proof) != len(expected) or not sodium_memcmp(proof, expected):
            raise HandshakeError("Authentication failed: challenge response mismatch")
        self._state = _DONE


def _parse_hello(payload: bytes) -> dict[str, Any]:
    """Decode and strictly check a hello (types, ranges and lengths of every field).

    A hello of another protocol version is only checked for `proto` and `version`, so the
    version mismatch is reported even if the other fields changed between versions. The
    error never contains a peer value: every field is bounded here before anything shows it.
    """
    malformed = HandshakeError("malformed handshake message")
    try:
        # Bounded by MAX_HANDSHAKE_FRAME; cbor2 raises more than CBORDecodeError on garbage
        # (RecursionError, ValueError, TypeError for unhashable keys, MemoryError, ...).
        hello = cbor2.loads(payload)
    except Exception:
        raise malformed from None
    if type(hello) is not dict:
        raise malformed
    proto, version = hello.get("proto"), hello.get("version")
    if type(proto) is not int or not 0 <= proto <= MAX_PROTO:
        raise malformed
    if (type(version) is not str or not 0 < len(version) <= MAX_VERSION_LEN
            or not version.isascii() or not version.isprintable()):
        raise malformed
    if proto != PROTOCOL_VERSION:
        return hello
    role, auth, challenge = hello.get("role"), hello.get("auth"), hello.get("challenge")
    if (
        type(role) is not str
        or len(role) > MAX_ROLE_LEN
        or type(auth) is not bool
        or type(challenge) is not bytes
        or len(challenge) != CHALLENGE_SIZE
    ):
        raise malformed
    return hello
