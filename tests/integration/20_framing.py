"""20_framing - RFC 6455 §5 framing rules from a raw socket: each bad frame
must fail the connection with the exact close code, each valid one must work.

Servers: --echo --max-message 64K --close-timeout 1 for most cases; a second
one with --ping-interval 1 --pong-timeout 1 for the heartbeat cases."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rctest  # noqa: E402
from rctest import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT,  # noqa: E402
                    check, close_payload, eq, frame, tmo)

DEFAULT = ("--echo", "--max-message", "64K", "--close-timeout", "1")
HEARTBEAT = ("--echo", "--ping-interval", "1", "--pong-timeout", "1")
K64 = 64 * 1024


def fails_with(srv, code, *frames, before=()):
    """Sends the frames in one write on a fresh connection; `before` lists
    (opcode, payload) echoes expected first. Then: close `code` + TCP close."""
    with srv.connect() as c:
        c.send(b"".join(frames))
        for op, payload in before:
            c.expect_message(op, payload)
        c.expect_fail(code)


# --- mask, RSV, opcodes ---------------------------------------------------------------

def test_unmasked_frame_is_1002(srv):
    fails_with(srv, 1002, frame(OP_TEXT, "no mask", mask=False))


def test_unmasked_empty_and_control_frames_are_1002(srv):
    fails_with(srv, 1002, frame(OP_TEXT, b"", mask=False))
    fails_with(srv, 1002, frame(OP_PING, b"p", mask=False))


def test_rsv_bits_are_1002(srv):
    for rsv in range(1, 8):
        fails_with(srv, 1002, frame(OP_TEXT, "rsv", rsv=rsv))


def test_rsv_on_control_and_continuation_is_1002(srv):
    fails_with(srv, 1002, frame(OP_PING, "x", rsv=4))
    fails_with(srv, 1002, frame(OP_TEXT, "a", fin=False), frame(OP_CONT, "b", rsv=4))


def test_reserved_opcodes_are_1002(srv):
    for op in (3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF):
        fails_with(srv, 1002, frame(op, b""))
        fails_with(srv, 1002, frame(op, b"payload"))


def test_reserved_opcode_after_valid_message(srv):
    fails_with(srv, 1002, frame(OP_TEXT, "ok"), frame(5, b"x"), frame(OP_PING, b"late"),
               before=[(OP_TEXT, "ok")])


# --- control frames ---------------------------------------------------------------------

def test_control_frame_over_125_is_1002(srv):
    fails_with(srv, 1002, frame(OP_PING, b"x" * 126))
    fails_with(srv, 1002, frame(OP_PONG, b"x" * 126))
    fails_with(srv, 1002, frame(OP_CLOSE, close_payload(1000, b"r" * 124)))


def test_control_frame_125_ok(srv):
    with srv.connect() as c:
        c.send_frame(OP_PING, b"p" * 125)
        c.expect_pong(b"p" * 125)
        c.finish()


def test_control_frame_with_16bit_length_form_is_1002(srv):
    # A control payload of 126+ can only be announced with the 16-bit form.
    fails_with(srv, 1002, frame(OP_PING, b"y" * 200))


def test_fragmented_ping_is_1002(srv):
    fails_with(srv, 1002, frame(OP_PING, b"ab", fin=False), frame(OP_CONT, b"cd"))


def test_fragmented_close_is_1002(srv):
    fails_with(srv, 1002, frame(OP_CLOSE, close_payload(1000), fin=False))


# --- fragmentation ----------------------------------------------------------------------

def test_cont_without_message_is_1002(srv):
    fails_with(srv, 1002, frame(OP_CONT, b"orphan"))
    fails_with(srv, 1002, frame(OP_CONT, b"orphan", fin=False), frame(OP_TEXT, "x"))


def test_new_text_inside_fragmented_message_is_1002(srv):
    fails_with(srv, 1002, frame(OP_TEXT, "a", fin=False), frame(OP_TEXT, "b"))
    fails_with(srv, 1002, frame(OP_BINARY, b"a", fin=False), frame(OP_TEXT, "b", fin=False))


def test_cont_after_finished_message_is_1002(srv):
    fails_with(srv, 1002, frame(OP_TEXT, "a", fin=False), frame(OP_CONT, "b"),
               frame(OP_CONT, "c"), before=[(OP_TEXT, "ab")])


def test_fragmented_message_joined(srv):
    with srv.connect() as c:
        c.send(frame(OP_TEXT, "Hel", fin=False) + frame(OP_CONT, "", fin=False) +
               frame(OP_CONT, "lo"))
        c.expect_message(OP_TEXT, "Hello")
        parts = [os.urandom(1000) for _ in range(20)]
        for i, p in enumerate(parts):
            c.send_frame(OP_BINARY if i == 0 else OP_CONT, p, fin=(i == len(parts) - 1))
        c.expect_message(OP_BINARY, b"".join(parts))
        c.finish()


def test_pings_interleaved_with_fragments(srv):
    with srv.connect() as c:
        c.send_frame(OP_TEXT, "frag-1 ", fin=False)
        c.send_frame(OP_PING, b"ping-1")
        c.expect_pong(b"ping-1")
        c.send_frame(OP_CONT, "frag-2 ", fin=False)
        c.send_frame(OP_PONG, b"unsolicited")  # must be ignored
        c.send_frame(OP_PING, b"")
        c.send_frame(OP_PING, b"ping-3")
        c.expect_pong(b"")
        c.expect_pong(b"ping-3")
        c.send_frame(OP_CONT, "frag-3")
        c.expect_message(OP_TEXT, "frag-1 frag-2 frag-3")
        c.finish()


def test_ping_payload_answered(srv):
    with srv.connect() as c:
        for payload in (b"", b"hello", bytes(range(125)), b"\xff\x00\xfe"):
            c.send_frame(OP_PING, payload)
            c.expect_pong(payload)
        c.send_frame(OP_PONG, b"nobody asked")
        c.expect_nothing(0.2)
        c.finish()


# --- UTF-8 ------------------------------------------------------------------------------

def test_invalid_utf8_whole_is_1007(srv):
    for bad in (b"\xff", b"abc\xc0\xafdef", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"ok\xe2\x82"):
        fails_with(srv, 1007, frame(OP_TEXT, bad))


def test_invalid_utf8_split_across_fragments_is_1007(srv):
    # Each fragment ends mid-character; the whole is invalid (E2 82 + 41).
    fails_with(srv, 1007, frame(OP_TEXT, b"abc\xe2", fin=False), frame(OP_CONT, b"\x82"))
    fails_with(srv, 1007, frame(OP_TEXT, b"abc\xe2", fin=False),
               frame(OP_CONT, b"\x82", fin=False), frame(OP_CONT, b"A"))


def test_valid_utf8_split_across_fragments_ok(srv):
    text = "κόσμε €𤭢".encode("utf-8")
    with srv.connect() as c:
        for i in range(len(text)):
            c.send(frame(OP_TEXT, text[:i], fin=False) + frame(OP_CONT, text[i:]))
            c.expect_message(OP_TEXT, text)
        c.finish()


def test_invalid_utf8_fail_fast_first_fragment(srv):
    # The rest of the message is never sent: the server must not wait for it.
    with srv.connect() as c:
        c.send_frame(OP_TEXT, b"valid start \xf4\x90\x80\x80", fin=False)
        c.expect_fail(1007, timeout=1.0)


def test_invalid_utf8_fail_fast_mid_frame(srv):
    # Half a frame: the invalid byte is in, the frame's end never comes.
    with srv.connect() as c:
        data = frame(OP_TEXT, b"abcdef\xc0\xaf" + b"x" * 1000)
        c.send(data[:20])
        c.expect_fail(1007, timeout=1.0)


def test_truncated_utf8_at_message_end_is_1007(srv):
    fails_with(srv, 1007, frame(OP_TEXT, b"end\xf0\x9f\x98", fin=False), frame(OP_CONT, b""))


def test_binary_is_not_utf8_checked(srv):
    with srv.connect() as c:
        c.send_frame(OP_BINARY, b"\xff\xfe\xc0\xaf")
        c.expect_message(OP_BINARY, b"\xff\xfe\xc0\xaf")
        c.finish()


# --- close frames -----------------------------------------------------------------------

def test_close_1_byte_payload_is_1002(srv):
    fails_with(srv, 1002, frame(OP_CLOSE, b"\x03"))


def test_invalid_close_codes_are_1002(srv):
    for code in (0, 999, 1004, 1005, 1006, 1012, 1016, 1100, 2000, 2999, 5000, 65535):
        fails_with(srv, 1002, frame(OP_CLOSE, close_payload(code)))


def test_valid_close_codes_echoed(srv):
    for code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999):
        with srv.connect() as c:
            c.finish(code)


def test_close_with_reason_echoed_code(srv):
    with srv.connect() as c:
        c.finish(1000, "bye κόσμε")
    with srv.connect() as c:
        c.finish(4001, b"r" * 123)


def test_close_without_payload(srv):
    with srv.connect() as c:
        c.send_close(None)
        code, _ = c.expect_close((None, 1000))
        c.wait_closed()


def test_close_reason_invalid_utf8_is_1007(srv):
    fails_with(srv, 1007, frame(OP_CLOSE, close_payload(1000, b"bad \xff reason")))
    fails_with(srv, 1007, frame(OP_CLOSE, close_payload(1000, b"\xed\xa0\x80")))


def test_nothing_processed_after_close(srv):
    with srv.connect() as c:
        c.send(frame(OP_CLOSE, close_payload(1000)) + frame(OP_TEXT, "after") +
               frame(OP_PING, b"after"))
        c.expect_close(1000)
        c.wait_closed()  # no echo, no pong after the close (§5.5.1)


def test_server_closes_tcp_after_close_timeout(srv):
    # The server fails the connection and the client never answers the close:
    # the server must drop TCP by itself (--close-timeout 1).
    with srv.connect() as c:
        c.send_frame(OP_TEXT, "x", mask=False)
        c.expect_close(1002)
        t0 = time.monotonic()
        c.wait_closed(3.0)
        dt = time.monotonic() - t0
        check(dt <= tmo(2.5), "TCP closed %.2fs after the close frame" % dt)


# --- lengths and limits -------------------------------------------------------------------

def test_length_boundaries_echoed(srv):
    with srv.connect() as c:
        for n in (0, 1, 125, 126, 127, 128, 65535, 65536):
            p = os.urandom(n)
            c.send_frame(OP_BINARY, p)
            c.expect_message(OP_BINARY, p)
        c.finish()


def test_non_minimal_length_is_1002(srv):
    # §5.2: "the minimal number of bytes MUST be used to encode the length".
    fails_with(srv, 1002, frame(OP_BINARY, b"abc", len_form=16))
    fails_with(srv, 1002, frame(OP_BINARY, b"x" * 200, len_form=64))


def test_64bit_length_top_bit_is_1002(srv):
    # §5.2: the most significant bit of a 64-bit length MUST be 0.
    fails_with(srv, 1002, frame(OP_BINARY, b"", length=(1 << 63) | 5, len_form=64))


def test_max_message_exact_ok(srv):
    with srv.connect() as c:
        p = os.urandom(K64)
        c.send_frame(OP_BINARY, p)
        c.expect_message(OP_BINARY, p)
        t = b"t" * K64
        c.send_frame(OP_TEXT, t[:1000], fin=False)
        c.send_frame(OP_CONT, t[1000:])
        c.expect_message(OP_TEXT, t)
        c.finish()


def test_message_over_max_is_1009(srv):
    fails_with(srv, 1009, frame(OP_BINARY, b"b" * (K64 + 1)))


def test_fragmented_message_over_max_is_1009(srv):
    fails_with(srv, 1009, frame(OP_TEXT, b"a" * 40000, fin=False),
               frame(OP_CONT, b"a" * 40000))


def test_huge_length_header_refused_at_once(srv):
    # Only the header announcing 1 GiB is sent: the server must decide from the
    # header, not wait for (or allocate) the payload.
    with srv.connect() as c:
        c.send(frame(OP_BINARY, b"", length=1 << 30))
        c.expect_fail(1009, timeout=1.0)


# --- delivery patterns ----------------------------------------------------------------------

def test_byte_at_a_time_frames(srv):
    with srv.connect() as c:
        for op, payload in ((OP_TEXT, "byte by byte κόσμε"), (OP_BINARY, os.urandom(300))):
            c.send_frame(op, payload, chop=1, delay=0.0005)
            c.expect_message(op, payload)
        c.send_frame(OP_PING, b"slow ping", chop=1, delay=0.0005)
        c.expect_pong(b"slow ping")
        c.finish()


def test_many_frames_one_write(srv):
    with srv.connect() as c:
        msgs = [("m%d" % i) * (i % 50) for i in range(200)]
        c.send(b"".join(frame(OP_TEXT, m) for m in msgs))
        for m in msgs:
            c.expect_message(OP_TEXT, m)
        c.finish()


def test_mask_key_zero_and_all_ones(srv):
    with srv.connect() as c:
        for key in (b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x01\x02\x03\x04"):
            c.send_frame(OP_TEXT, "masked with %r" % key, key=key)
            c.expect_message(OP_TEXT, "masked with %r" % key)
        c.finish()


def test_client_disconnect_mid_frame_leaves_server_ok(srv):
    for cut in (1, 2, 7, 50):
        with srv.connect() as c:
            c.send(frame(OP_BINARY, os.urandom(100))[:cut])
    with srv.connect() as c:
        c.send_frame(OP_TEXT, "alive")
        c.expect_message(OP_TEXT, "alive")
        c.finish()


def test_sigterm_closes_clients_with_1001(srv):
    # DESIGN.md "Operations": SIGTERM drains gracefully with close 1001.
    # Uses a server of its own, since it stops it.
    own = rctest.Server(DEFAULT).start()
    try:
        with own.connect() as a, own.connect("/ws") as b:
            a.send_frame(OP_TEXT, "before")
            a.expect_message(OP_TEXT, "before")
            own.proc.send_signal(signal.SIGTERM)
            for c in (a, b):
                c.expect_close(1001, timeout=5.0)
                c.try_send(frame(OP_CLOSE, close_payload(1001)))
                c.wait_closed(5.0)
        own.proc.wait(tmo(10))
    finally:
        problems = own.stop()
    check(not problems, "server after SIGTERM: %s" % "; ".join(problems))
    eq(own.proc.returncode, 0, "exit status after SIGTERM")


# --- heartbeat ------------------------------------------------------------------------------

@rctest.server(*HEARTBEAT)
def test_silent_client_is_pinged_then_closed(srv):
    with srv.connect() as c:
        t0 = time.monotonic()
        ev = c.recv(timeout=3.0)
        check(isinstance(ev, rctest.Frame) and ev.opcode == OP_PING,
              "expected a server PING after --ping-interval 1, got %r" % ev)
        dt = time.monotonic() - t0
        check(0.5 <= dt <= tmo(2.5), "first ping after %.2fs, want ~1s" % dt)
        # We never answer: the server must give up after --pong-timeout 1.
        deadline = time.monotonic() + tmo(4.0)
        while True:
            try:
                ev = c.recv(timeout=max(0.01, deadline - time.monotonic()))
            except rctest.Closed:
                break  # dropped TCP without a close frame: acceptable
            except rctest.Timeout:
                raise rctest.Failure("unanswered ping: connection still open after %.1fs" %
                                     (time.monotonic() - t0))
            if ev.opcode == OP_CLOSE:
                check(len(ev.payload) != 1, "1-byte close payload")
                c.try_send(frame(OP_CLOSE, ev.payload[:2]))
                c.wait_closed(3.0)
                break
            check(ev.opcode == OP_PING, "unexpected %r while waiting for the close" % ev)
        dt = time.monotonic() - t0
        check(dt >= 1.5, "closed after %.2fs: before ping-interval + pong-timeout" % dt)


@rctest.server(*HEARTBEAT)
def test_client_answering_pings_stays(srv):
    with srv.connect() as c:
        end = time.monotonic() + 3.2
        pings = 0
        n = 0
        while time.monotonic() < end:
            try:
                ev = c.recv(timeout=0.3)
            except rctest.Timeout:
                continue
            check(isinstance(ev, rctest.Frame) and ev.opcode == OP_PING,
                  "unexpected %r from an idle connection" % ev)
            pings += 1
            c.send_frame(OP_PONG, ev.payload)
            c.send_frame(OP_TEXT, "still here %d" % n)
            c.expect_message(OP_TEXT, "still here %d" % n)
            n += 1
        check(pings >= 1, "no ping in 3.2s with --ping-interval 1")
        c.finish(ignore_pings=True)  # the next ping may cross our close


if __name__ == "__main__":
    rctest.main(globals(), default_args=DEFAULT)
