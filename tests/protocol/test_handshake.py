"""Handshake state machine: both ends prove the key and agree on protocol version and roles."""

import re

import cbor2
import pytest

from hyperqueue.protocol.errors import HandshakeError, ProtocolError
from hyperqueue.protocol.handshake import (
    PROTOCOL_VERSION,
    ROLE_CLIENT,
    ROLE_CLIENT_SERVER,
    ROLE_WORKER,
    ROLE_WORKER_SERVER,
    Handshake,
    _session_key,
)
from hyperqueue.protocol.secretbox import PlainChannel, SealedChannel

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
AUTH_FAILED = (
    r"Authentication failed: the peer does not have the same secret key \(wrong or outdated access file\?\)"
)


def client(key=KEY, **kw):
    return Handshake(role=ROLE_CLIENT, peer_role=ROLE_CLIENT_SERVER, key=key, hq_version="0.27.0", **kw)


def server(key=KEY, **kw):
    return Handshake(role=ROLE_CLIENT_SERVER, peer_role=ROLE_CLIENT, key=key, hq_version="0.27.0", **kw)


def exchange(a, b):
    """Run both ends to completion, delivering messages in order as a network would.

    Returns the error each side raised (None if it finished)."""
    to_b, to_a = a.start(), b.start()
    errors = {a: None, b: None}
    while (to_a or to_b) and not all(errors.values()):
        for me, inbox, outbox in ((a, to_a, to_b), (b, to_b, to_a)):
            while inbox and errors[me] is None:
                try:
                    outbox += me.receive(inbox.pop(0))
                except HandshakeError as e:
                    errors[me] = e
                    inbox.clear()
    return errors[a], errors[b]


def hello(**fields):
    msg = {"proto": PROTOCOL_VERSION, "version": "9.9.9", "role": ROLE_CLIENT_SERVER, "auth": True,
           "challenge": bytes(32)}
    msg.update(fields)
    return cbor2.dumps({k: v for k, v in msg.items() if v is not ...})


def assert_channels_connected(a, b):
    for i in range(3):
        assert b.channel.open(a.channel.seal(b"a->b %d" % i)) == b"a->b %d" % i
        assert a.channel.open(b.channel.seal(b"b->a %d" % i)) == b"b->a %d" % i


def test_success_when_both_start_first():
    a, b = client(), server()
    assert exchange(a, b) == (None, None)
    assert a.done and b.done
    assert isinstance(a.channel, SealedChannel)
    assert a.peer_version == "0.27.0"
    assert_channels_connected(a, b)


def test_success_when_one_side_receives_peer_hello_before_sending_its_own():
    a, b = client(), server()
    [hello_a] = a.start()
    hello_b, proof_b = b.receive(hello_a)  # b replies with its hello and its proof at once
    [proof_a] = a.receive(hello_b)
    assert a.receive(proof_b) == []
    assert a.done and not b.done
    assert b.receive(proof_a) == []
    assert b.done
    assert_channels_connected(a, b)


def test_worker_port_roles_succeed():
    w = Handshake(role=ROLE_WORKER, peer_role=ROLE_WORKER_SERVER, key=KEY, hq_version="1")
    s = Handshake(role=ROLE_WORKER_SERVER, peer_role=ROLE_WORKER, key=KEY, hq_version="1")
    assert exchange(w, s) == (None, None)
    assert_channels_connected(w, s)


def test_without_key_both_sides_use_plain_channel():
    a, b = client(key=None), server(key=None)
    [hello_a] = a.start()
    [hello_b] = b.receive(hello_a)  # no proof without a key
    assert b.done
    assert a.receive(hello_b) == []
    assert a.done
    assert isinstance(a.channel, PlainChannel) and isinstance(b.channel, PlainChannel)


@pytest.mark.parametrize("keys", [(KEY, OTHER_KEY), (OTHER_KEY, KEY)])
def test_wrong_key_fails_on_both_sides(keys):
    err_a, err_b = exchange(client(keys[0]), server(keys[1]))
    for err in (err_a, err_b):
        assert isinstance(err, HandshakeError)
        assert re.fullmatch(AUTH_FAILED, str(err))


def test_client_key_against_worker_port_fails():
    a = client()
    s = Handshake(role=ROLE_WORKER_SERVER, peer_role=ROLE_WORKER, key=KEY, hq_version="1")
    err_a, err_s = exchange(a, s)
    assert str(err_a) == "Unexpected peer role 'server', expected 'hq-server'"
    assert str(err_s) == "Unexpected peer role 'hq-client', expected 'worker'"


def test_mirrored_hello_fails():
    a = client()
    [own_hello] = a.start()
    with pytest.raises(HandshakeError, match="Unexpected peer role 'hq-client', expected 'hq-server'"):
        a.receive(own_hello)


def test_mirrored_proof_fails():
    a, b = client(), server()
    [hello_a] = a.start()
    [hello_b] = b.start()
    [own_proof] = a.receive(hello_b)
    with pytest.raises(HandshakeError, match=AUTH_FAILED):
        a.receive(own_proof)


def test_proof_answering_wrong_challenge_fails():
    # A peer that has the key but answers some other challenge (e.g. one recorded earlier).
    a = client()
    a.start()
    peer_challenge = bytes(range(32))
    a.receive(hello(challenge=peer_challenge))
    my_challenge = a._challenge
    forger = SealedChannel(
        send_key=_session_key(KEY, ROLE_CLIENT_SERVER, ROLE_CLIENT, peer_challenge, my_challenge),
        recv_key=bytes(32),
    )
    with pytest.raises(HandshakeError, match="Authentication failed: challenge response mismatch"):
        a.receive(forger.seal(b"hq-proof" + ROLE_CLIENT_SERVER.encode() + bytes(32)))


def test_protocol_version_mismatch_message():
    a = client()
    a.start()
    with pytest.raises(HandshakeError) as info:
        a.receive(hello(proto=2, version="1.0.0"))
    assert str(info.value) == (
        "Protocol version mismatch: peer speaks 2, this hq speaks 1 (peer hq version 1.0.0, this hq 0.27.0)"
    )


def test_protocol_version_mismatch_reported_even_if_other_fields_changed():
    a = client()
    with pytest.raises(HandshakeError, match="Protocol version mismatch: peer speaks 7"):
        a.receive(cbor2.dumps({"proto": 7, "version": "2.0", "nonce": "something new"}))


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\xff\xfe garbage",
        cbor2.dumps([1, 2, 3]),
        cbor2.dumps("hello"),
        hello(proto="1"),
        hello(proto=True),
        hello(proto=...),
        hello(version=1),
        hello(role=5),
        hello(role=...),
        hello(auth=1),
        hello(challenge="x" * 32),
        hello(challenge=bytes(31)),
        hello(challenge=...),
    ],
)
def test_malformed_hello(payload):
    with pytest.raises(HandshakeError, match="^malformed handshake message$"):
        client().receive(payload)


def test_keyless_vs_keyed_fails_clearly_on_both_sides():
    err_a, err_b = exchange(client(key=None), server())
    assert str(err_a) == "Authentication mismatch: the peer requires authentication but this side has it disabled"
    assert str(err_b) == "Authentication mismatch: this side requires authentication but the peer has it disabled"


def test_session_keys_differ_per_connection():
    a1, b1 = client(), server()
    a2, b2 = client(), server()
    exchange(a1, b1)
    exchange(a2, b2)
    # Same shared key, same counter: only fresh challenges keep the nonce from repeating.
    assert a1.channel.seal(b"same") != a2.channel.seal(b"same")
    with pytest.raises(ProtocolError):
        b2.channel.open(a1.channel.seal(b"cross-connection replay"))


def test_challenges_are_what_make_session_keys_fresh():
    fixed = lambda n: b"\x07" * n  # noqa: E731
    a1, b1 = client(random=fixed), server(random=fixed)
    a2, b2 = client(random=fixed), server(random=fixed)
    exchange(a1, b1)
    exchange(a2, b2)
    assert a1.channel.seal(b"same") == a2.channel.seal(b"same")


def test_message_after_done_fails():
    a, b = client(), server()
    exchange(a, b)
    with pytest.raises(HandshakeError, match="after the handshake finished"):
        a.receive(b"anything")


def test_proof_before_hello_fails():
    a, b = client(), server()
    _, proof_b = b.receive(a.start()[0])
    with pytest.raises(HandshakeError, match="malformed handshake message"):
        client().receive(proof_b)


def test_failed_handshake_stays_failed():
    a = client()
    with pytest.raises(HandshakeError):
        a.receive(b"garbage")
    with pytest.raises(HandshakeError, match="already failed"):
        a.receive(hello())
    assert not a.done


def test_misuse_is_a_programming_error():
    a = client()
    a.start()
    with pytest.raises(RuntimeError):
        a.start()
    with pytest.raises(RuntimeError):
        a.channel
    with pytest.raises(ValueError):
        client(key=b"too short")
