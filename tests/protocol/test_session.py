"""The sans-IO session driver alone: both ends in memory, bytes delivered in any chunking."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hyperqueue.protocol.errors import HandshakeError, ProtocolError
from hyperqueue.protocol.framing import MAX_FRAME, encode_frame
from hyperqueue.protocol.handshake import (
    MAX_HANDSHAKE_FRAME,
    ROLE_CLIENT,
    ROLE_CLIENT_SERVER,
    ROLE_WORKER,
    ROLE_WORKER_SERVER,
    Handshake,
)
from hyperqueue.protocol.session import CLOSED, ESTABLISHED, NEED_DATA, SendData, Session

KEY = bytes(range(32))
OTHER_KEY = bytes(32)
AUTH_FAILED = "Authentication failed: the peer does not have the same secret key"


def client(key=KEY, role=ROLE_CLIENT, peer_role=ROLE_CLIENT_SERVER):
    hs = Handshake(role=role, peer_role=peer_role, key=key, hq_version="0.27.0")
    return Session(hs, peer="server")


def server(key=KEY, role=ROLE_CLIENT_SERVER, peer_role=ROLE_CLIENT, challenge=None):
    random = {} if challenge is None else {"random": lambda n: challenge}
    hs = Handshake(role=role, peer_role=peer_role, key=key, hq_version="0.27.0", **random)
    return Session(hs, peer="client")


def drain(session):
    """Run `session` until it needs data; return (messages, handshake replies, other events)."""
    messages, replies, events = [], [], []
    while (event := session.next_event()) is not NEED_DATA:
        if isinstance(event, bytes):
            messages.append(event)
        elif isinstance(event, SendData):
            replies.append(event.data)
        else:
            events.append(event)
            if event is CLOSED:
                break
    return messages, b"".join(replies), events


def connect(a, b, chunk=None):
    """Run the handshake between `a` and `b` like a network would, delivering `chunk` bytes at a time
    (all pending bytes if None). Returns the errors each side raised (None if it finished)."""
    wire = {a: bytearray(a.start()), b: bytearray(b.start())}  # bytes each side sent, undelivered
    errors = {a: None, b: None}
    while True:
        moved = False
        for me, peer in ((a, b), (b, a)):
            if errors[me] is not None or me.is_established:
                continue
            n = len(wire[peer]) if chunk is None else min(chunk, len(wire[peer]))
            try:
                if n:
                    me.receive_data(bytes(wire[peer][:n]))
                    del wire[peer][:n]
                    moved = True
                while (event := me.next_event()) is not NEED_DATA and event is not ESTABLISHED:
                    wire[me] += event.data  # a SendData
                    moved = True
            except HandshakeError as e:
                errors[me] = e
                moved = True
        if not moved:
            return errors[a], errors[b]


def deliver(sender_bytes, receiver, chunk=None):
    """Feed `sender_bytes` to `receiver` (in pieces of `chunk`), return the messages it yields."""
    got = []
    if chunk is None:
        receiver.receive_data(sender_bytes)
        got += drain(receiver)[0]
    else:
        for i in range(0, len(sender_bytes), chunk):
            receiver.receive_data(sender_bytes[i:i + chunk])
            got += drain(receiver)[0]
    return got


@pytest.mark.parametrize("key", [KEY, None], ids=["sealed", "plain"])
def test_handshake_then_messages_both_ways(key):
    a, b = client(key), server(key)
    assert connect(a, b) == (None, None)
    assert a.is_established and b.is_established
    assert deliver(a.send(b"hello"), b) == [b"hello"]
    big = bytes(range(256)) * 12_000
    assert deliver(b.send_many([b"one", big, b""]), a) == [b"one", big, b""]
    assert a.next_event() is NEED_DATA


def test_handshake_and_messages_delivered_byte_by_byte():
    a, b = client(), server()
    assert connect(a, b, chunk=1) == (None, None)
    data = a.send_many([b"first", b"x" * 5000, b""]) + a.send(b"last")
    assert deliver(data, b, chunk=1) == [b"first", b"x" * 5000, b"", b"last"]


def test_established_is_returned_once_and_bytes_after_the_handshake_are_kept():
    a, b = client(), server()
    b.receive_data(a.start())
    reply = b.next_event()
    assert isinstance(reply, SendData)  # the server's hello (it did not call start) and proof
    a.receive_data(reply.data)
    proof = a.next_event()
    assert isinstance(proof, SendData)
    assert a.next_event() is ESTABLISHED
    # The client's proof and its first (big) messages reach the server in one chunk.
    b.receive_data(proof.data + a.send_many([b"first", b"y" * (MAX_HANDSHAKE_FRAME * 4)]))
    assert b.next_event() is ESTABLISHED
    assert b.next_event() == b"first"
    assert b.next_event() == b"y" * (MAX_HANDSHAKE_FRAME * 4)
    assert b.next_event() is NEED_DATA


def test_wrong_key_is_reported_on_both_sides():
    a, b = client(OTHER_KEY), server()
    err_a, err_b = connect(a, b)
    for err in (err_a, err_b):
        assert isinstance(err, HandshakeError)
        assert str(err).startswith(AUTH_FAILED)
    with pytest.raises(HandshakeError):  # and stays failed
        a.next_event()


def test_reply_comes_out_before_a_failing_frame_is_read():
    """The client's hello and (wrong) proof arrive in one chunk: the server hands out its own proof
    first, so the client can report the wrong key too, and only then fails."""
    a, b = client(OTHER_KEY), server()
    c_hello, s_hello = a.start(), b.start()
    a.receive_data(s_hello)
    c_proof = a.next_event()
    assert isinstance(c_proof, SendData)
    b.receive_data(c_hello + c_proof.data)
    s_proof = b.next_event()
    assert isinstance(s_proof, SendData)
    with pytest.raises(HandshakeError, match=AUTH_FAILED):
        b.next_event()
    a.receive_data(s_proof.data)
    with pytest.raises(HandshakeError, match=AUTH_FAILED):
        a.next_event()


def test_wrong_roles_and_auth_mismatch():
    a = client(role=ROLE_WORKER, peer_role=ROLE_WORKER_SERVER)  # a worker at the client port
    err_a, err_b = connect(a, server())
    assert "Unexpected peer role 'hq-server', expected 'server'" in str(err_a)
    assert "Unexpected peer role 'worker', expected 'hq-client'" in str(err_b)
    err_a, err_b = connect(client(key=None), server())
    assert "Authentication mismatch" in str(err_a) and "Authentication mismatch" in str(err_b)


def test_oversized_frame_before_authentication():
    b = server()
    b.start()
    with pytest.raises(HandshakeError, match=r"^handshake failed: frame of 4097 bytes exceeds the maximum of 4096$"):
        b.receive_data((MAX_HANDSHAKE_FRAME + 1).to_bytes(4, "little"))  # the header alone
    with pytest.raises(HandshakeError, match="frame of 4097 bytes"):
        b.next_event()
    assert not b.is_established


def test_oversized_frame_after_authentication():
    a, b = client(), server()
    connect(a, b)
    assert deliver(a.send(b"z" * 100_000), b) == [b"z" * 100_000]  # the handshake limit is gone
    with pytest.raises(ProtocolError, match=f"^frame of {MAX_FRAME + 1} bytes exceeds the maximum of {MAX_FRAME}$"):
        b.receive_data((MAX_FRAME + 1).to_bytes(4, "little"))
    with pytest.raises(ProtocolError, match="exceeds the maximum"):
        b.next_event()


def test_tampered_frame_poisons_the_session():
    a, b = client(), server()
    connect(a, b)
    frame = bytearray(a.send(b"transfer 10 coins"))
    frame[-3] ^= 0x40
    b.receive_data(bytes(frame))
    with pytest.raises(ProtocolError, match="frame failed authentication"):
        b.next_event()
    b.receive_data(a.send(b"a genuine next frame"))
    with pytest.raises(ProtocolError, match="unusable"):
        b.next_event()
    with pytest.raises(ProtocolError, match="unusable"):
        b.send(b"reply")


def test_replayed_and_reordered_frames_fail():
    a, b = client(), server()
    connect(a, b)
    first, second = a.send(b"one"), a.send(b"two")
    assert deliver(first, b) == [b"one"]
    b.receive_data(first)  # replayed
    with pytest.raises(ProtocolError, match="frame failed authentication"):
        b.next_event()

    a, b = client(), server()
    connect(a, b)
    first, second = a.send(b"one"), a.send(b"two")
    b.receive_data(second)  # reordered
    with pytest.raises(ProtocolError, match="frame failed authentication"):
        b.next_event()


def test_frame_from_another_connection_fails():
    a1, b1 = client(), server()
    a2, b2 = client(), server()
    connect(a1, b1)
    connect(a2, b2)
    b2.receive_data(a1.send(b"for connection 1"))  # same key, same counter, other session keys
    with pytest.raises(ProtocolError, match="frame failed authentication"):
        b2.next_event()


def test_clean_eof_is_closed_after_the_last_message():
    a, b = client(), server()
    connect(a, b)
    b.receive_data(a.send(b"last words"))
    b.receive_data(b"")
    assert b.next_event() == b"last words"
    assert b.next_event() is CLOSED
    assert b.next_event() is CLOSED  # and stays so
    assert deliver(b.send(b"still allowed: half-close"), a) == [b"still allowed: half-close"]
    with pytest.raises(RuntimeError, match="after EOF"):
        b.receive_data(b"more")


@pytest.mark.parametrize("cut", [1, 3, 4, 10])
def test_eof_mid_frame_is_protocol_error(cut):
    b = Session.established(_plain_channel(), peer="client")
    b.receive_data(encode_frame(b"complete") + encode_frame(b"truncated")[:cut])
    b.receive_data(b"")
    assert b.next_event() == b"complete"
    for _ in range(2):
        with pytest.raises(ProtocolError, match="^connection closed mid-frame$"):
            b.next_event()


def test_eof_during_handshake():
    a = client()
    hello = a.start()
    b = server()
    b.start()
    b.receive_data(hello[:-2])  # a truncated hello, then EOF
    b.receive_data(b"")
    with pytest.raises(HandshakeError, match="^connection closed by client during the handshake$"):
        b.next_event()
    b = server()
    b.start()
    b.receive_data(b"")
    with pytest.raises(HandshakeError, match="^connection closed by client during the handshake$"):
        b.next_event()


def test_sending_before_the_handshake_and_too_big_messages():
    a, b = client(), server()
    with pytest.raises(RuntimeError, match="handshake has not finished"):
        a.send(b"")
    with pytest.raises(RuntimeError, match="handshake has not finished"):
        a.send_many([b"early"])
    connect(a, b)
    limit = MAX_FRAME - 16
    with pytest.raises(ProtocolError, match=f"^message of {limit + 1} bytes exceeds the maximum of {limit}$"):
        a.send(bytes(limit + 1))
    with pytest.raises(ProtocolError, match="exceeds the maximum"):
        a.send_many([b"small", bytes(limit + 1)])  # nothing sealed: the counters stay in step
    assert deliver(a.send(b"next"), b) == [b"next"]


def test_garbage_instead_of_a_hello():
    b = server()
    b.start()
    b.receive_data(encode_frame(b"\xff\x00 not cbor"))
    with pytest.raises(HandshakeError, match="^malformed handshake message$"):
        b.next_event()


def _plain_channel():
    a, b = client(key=None), server(key=None)
    connect(a, b)
    return b._channel


@settings(max_examples=60, deadline=None)
@given(
    keyed=st.booleans(),
    messages=st.lists(st.binary(max_size=3000) | st.just(b"big" * 2000), max_size=12),
    cuts=st.lists(st.integers(min_value=0, max_value=60_000), max_size=40),
)
def test_any_chunking_delivers_the_same_messages(keyed, messages, cuts):
    """Whatever the split of the client's whole byte stream (hello, proof, messages, EOF), the
    server reports the handshake once, then exactly the messages, then CLOSED."""
    key = KEY if keyed else None
    challenge = bytes(range(100, 132))
    # Establish the client against a twin of the server (same challenge, so same session keys),
    # recording every byte the client sends.
    a, twin, b = client(key), server(key, challenge=challenge), server(key, challenge=challenge)
    stream = bytearray(a.start())
    s_hello = twin.start()
    twin.receive_data(bytes(stream))
    _, s_proof, events = drain(twin)
    a.receive_data(s_hello + s_proof)
    _, c_proof, events = drain(a)
    assert events == [ESTABLISHED]
    stream += c_proof + a.send_many(messages)

    assert b.start() == s_hello
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    got, established, replies = [], 0, b""
    for start, end in zip(points, points[1:]):
        b.receive_data(bytes(stream[start:end]))
        while (event := b.next_event()) is not NEED_DATA:
            if event is ESTABLISHED:
                established += 1
            elif isinstance(event, SendData):
                replies += event.data
            else:
                got.append(event)
    b.receive_data(b"")
    assert b.next_event() is CLOSED
    assert established == 1
    assert got == messages
    assert replies == s_proof  # the same proof the client accepted


def test_large_frames_can_be_left_for_the_caller_to_open():
    """`next_event(defer_over=N)`: a frame longer than N comes back unopened (a shell opens it
    in a thread); smaller ones as before; frames are opened in order and tampering still
    poisons the session."""
    from hyperqueue.protocol.session import LargeFrame

    a, b = client(), server()
    connect(a, b)
    big = bytes(range(256)) * 4096  # 1 MiB
    b.receive_data(a.send_many([b"small", big, b"after"]))
    assert b.next_event(defer_over=len(big) - 1) == b"small"
    large = b.next_event(defer_over=len(big) - 1)
    assert isinstance(large, LargeFrame)
    assert large.open() == big
    assert b.next_event(defer_over=len(big) - 1) == b"after"
    assert b.next_event(defer_over=0) is NEED_DATA

    frame = bytearray(a.send(big))
    frame[-3] ^= 0x40
    b.receive_data(bytes(frame))
    large = b.next_event(defer_over=1000)
    with pytest.raises(ProtocolError, match="frame failed authentication"):
        large.open()
    b.receive_data(a.send(b"a genuine next frame"))
    with pytest.raises(ProtocolError, match="unusable"):
        b.next_event()
