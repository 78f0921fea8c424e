"""10_handshake - RFC 6455 §4 opening handshake: the valid upgrade and every
rejection, with its exact HTTP status, against the real server."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rctest  # noqa: E402
from rctest import OP_TEXT, check, eq, tmo, upgrade_request  # noqa: E402

TIMEOUT_ARGS = ("--echo", "--handshake-timeout", "1")


def refused(srv, raw, status, body_needed=True):
    """Sends raw bytes as a request; the answer must be `status` with
    Connection: close, a body when body_needed, then the TCP close."""
    with srv.raw() as c:
        r = c.request(raw)
        eq(r.status, status, "status for %r" % raw[:60])
        if body_needed:
            check(len(r.body) > 0, "%d response without a body" % status)
        if r.header("Content-Length") is not None:
            eq(int(r.header("Content-Length")), len(r.body), "Content-Length")
        c.wait_closed(3.0, allow_data=False)
        return r


# --- the valid upgrade -----------------------------------------------------------

def test_upgrade_rfc_example_key(srv):
    # RFC 6455 §1.3: this key must yield exactly this accept value.
    with srv.raw() as c:
        r = c.upgrade("/", key="dGhlIHNhbXBsZSBub25jZQ==")
        eq(r.header("Sec-WebSocket-Accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "accept")
        eq(r.count("Sec-WebSocket-Accept"), 1, "number of accept headers")
        eq(r.reason, "Switching Protocols", "reason phrase")
        c.send_frame(OP_TEXT, "hello")
        c.expect_message(OP_TEXT, "hello")
        c.finish()


def test_upgrade_random_key_and_ws_path(srv):
    for path in ("/", "/ws", "/ws?token=abc&x=1", "/?a=b"):
        with srv.raw() as c:
            c.upgrade(path)  # checks the exact accept for a fresh key
            c.send_frame(OP_TEXT, path)
            c.expect_message(OP_TEXT, path)
            c.finish()


def test_upgrade_header_case_and_token_lists(srv):
    # Header names are case-insensitive; Upgrade is case-insensitive;
    # Connection is a token list (RFC 6455 §4.2.1, RFC 9110 §7.6.1).
    key = rctest.new_key()
    raw = ("GET /ws HTTP/1.1\r\nhost: localhost:1\r\nUPGRADE: WebSocket\r\n"
           "connection: keep-alive, Upgrade\r\nsec-websocket-key: %s\r\n"
           "SEC-WEBSOCKET-VERSION: 13\r\nUser-Agent: rctest\r\n\r\n" % key)
    with srv.raw() as c:
        r = c.request(raw)
        eq(r.status, 101, "status")
        eq(r.header("Sec-WebSocket-Accept"), rctest.accept_for(key), "accept")
        c.send_frame(OP_TEXT, "x")
        c.expect_message(OP_TEXT, "x")
        c.finish()


def test_upgrade_no_unoffered_protocol_or_extension(srv):
    # §4.2.2: the server must not select a subprotocol or extension it was not
    # offered, and with --echo none is configured, so an unknown offer gets none.
    with srv.raw() as c:
        r = c.upgrade("/", headers=[("Sec-WebSocket-Protocol", "x-unknown-proto"),
                                    ("Sec-WebSocket-Extensions", "x-unknown-ext; a=1"),
                                    ("Origin", "http://example.test")])
        eq(r.header("Sec-WebSocket-Protocol"), None, "Sec-WebSocket-Protocol")
        eq(r.header("Sec-WebSocket-Extensions"), None, "Sec-WebSocket-Extensions")
        c.send_frame(OP_TEXT, "plain")
        c.expect_message(OP_TEXT, "plain")
        c.finish()


def test_handshake_byte_at_a_time(srv):
    key = rctest.new_key()
    req = upgrade_request("/ws", key=key)
    with srv.raw() as c:
        c.send_chopped(req, 1, 0.001)
        r = c.read_response()
        eq(r.status, 101, "status")
        eq(r.header("Sec-WebSocket-Accept"), rctest.accept_for(key), "accept")
        c.send_frame(OP_TEXT, "slow")
        c.expect_message(OP_TEXT, "slow")
        c.finish()


def test_frame_pipelined_with_handshake(srv):
    # A client may send frames right after its request, in the same packet:
    # they must be processed after the 101, not lost with the head buffer.
    extra = rctest.frame(OP_TEXT, "first") + rctest.frame(OP_TEXT, "second")
    with srv.raw() as c:
        c.upgrade("/", extra=extra)
        c.expect_message(OP_TEXT, "first")
        c.expect_message(OP_TEXT, "second")
        c.finish()


def test_pipelined_ping_with_handshake(srv):
    # The pong must come after the 101, never before it.
    with srv.raw() as c:
        c.upgrade("/", extra=rctest.frame(rctest.OP_PING, b"early"))
        c.expect_pong(b"early")
        c.finish()


def test_pipelined_close_with_handshake(srv):
    with srv.raw() as c:
        c.upgrade("/", extra=rctest.frame(rctest.OP_CLOSE, rctest.close_payload(1000)))
        c.expect_close(1000)
        c.wait_closed()


# --- rejections --------------------------------------------------------------------

def test_post_is_405(srv):
    r = refused(srv, upgrade_request(method="POST"), 405)
    # RFC 9110 §15.5.6: a 405 response MUST carry Allow.
    check(r.header("Allow") is not None and "GET" in r.header("Allow"),
          "405 without 'Allow: GET': %r" % r.raw_head)


def test_other_methods_are_405(srv):
    for m in ("PUT", "DELETE", "OPTIONS"):
        refused(srv, upgrade_request(method=m), 405)


def test_http10_is_400(srv):
    refused(srv, upgrade_request(proto="HTTP/1.0"), 400)


def test_missing_host_is_400(srv):
    refused(srv, upgrade_request(omit=("Host",)), 400)


def test_duplicate_host_is_400(srv):
    refused(srv, upgrade_request(headers=[("Host", "other.test")]), 400)


def test_missing_key_is_400(srv):
    refused(srv, upgrade_request(omit=("Sec-WebSocket-Key",)), 400)


def test_invalid_keys_are_400(srv):
    bad = [
        "AAAAAAAAAAAAAAAAAAAA",          # base64 of 15 bytes
        "AAAAAAAAAAAAAAAAAAAAAAAAAA==",  # base64 of 19 bytes
        "dGhlIHNhbXBsZSBub25jZQ",        # 16 bytes, padding missing
        "!!!!!!!!!!!!!!!!!!!!!!==",      # 24 chars, not base64
        "dGhlIHNhbXBsZSBub25jZQ==x",     # trailing garbage
        "",                              # empty value
    ]
    for key in bad:
        raw = upgrade_request(omit=("Sec-WebSocket-Key",),
                              headers=[("Sec-WebSocket-Key", key)])
        refused(srv, raw, 400)


def test_duplicate_key_is_400(srv):
    refused(srv, upgrade_request(headers=[("Sec-WebSocket-Key", rctest.new_key())]), 400)


def test_missing_version_is_400(srv):
    refused(srv, upgrade_request(omit=("Sec-WebSocket-Version",)), 400)


def test_version_8_is_426_with_version_header(srv):
    # §4.4: answer with the versions we speak.
    for v in ("8", "12", "14"):
        r = refused(srv, upgrade_request(version=v), 426)
        eq(r.header("Sec-WebSocket-Version"), "13", "Sec-WebSocket-Version on 426")


def test_plain_get_is_426_with_explanation(srv):
    r = refused(srv, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 426)
    check(b"websocket" in r.body.lower(), "426 body does not say this is a WebSocket "
          "endpoint: %r" % r.body)
    # RFC 9110 §15.5.22: a 426 response MUST carry Upgrade.
    check(r.header("Upgrade") is not None and "websocket" in r.header("Upgrade").lower(),
          "426 without 'Upgrade: websocket': %r" % r.raw_head)


def test_connection_without_upgrade_token_is_400(srv):
    raw = upgrade_request(omit=("Connection",), headers=[("Connection", "keep-alive")])
    refused(srv, raw, 400)


def test_upgrade_to_other_protocol_refused(srv):
    raw = upgrade_request(omit=("Upgrade",), headers=[("Upgrade", "h2c")])
    with srv.raw() as c:
        r = c.request(raw)
        check(r.status in (400, 426), "Upgrade: h2c answered %d, want 400 or 426" % r.status)
        c.wait_closed()


def test_unknown_path_is_404(srv):
    for path in ("/nope", "/ws/extra", "/wss", "/index.html"):
        r = refused(srv, upgrade_request(path=path), 404)
        check(len(r.body) > 0, "404 without a body")


def test_malformed_request_lines_are_400(srv):
    for raw in (b"GET /\r\nHost: a\r\n\r\n",
                b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
                b"GET / HTTP/1.1 extra\r\nHost: a\r\n\r\n",
                b"GET / HTTX/1.1\r\nHost: a\r\n\r\n",
                b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
                b"GET / HTTP/1.1\nHost: a\n\n",
                b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"):
        refused(srv, raw, 400, body_needed=False)


def test_malformed_header_lines_are_400(srv):
    base = upgrade_request().decode()
    for bad in ("Bad Header: x", "NoColon", "X-Fold: a\r\n folded", "X: a\rb"):
        raw = base[:-2] + bad + "\r\n\r\n"
        refused(srv, raw.encode(), 400, body_needed=False)


def test_header_too_large_is_431(srv):
    raw = upgrade_request(headers=[("X-Big", "a" * 70000)])
    with srv.raw() as c:
        c.send(raw[:4096])  # a head that keeps growing must be refused early
        try:
            c.send(raw[4096:])
        except rctest.Closed:
            pass
        r = c.read_response()
        eq(r.status, 431, "status for a 70 KB header")
        c.wait_closed(3.0, allow_data=True)


def test_too_many_headers_is_431(srv):
    raw = upgrade_request(headers=[("X-H%d" % i, "v") for i in range(1000)])
    with srv.raw() as c:
        try:
            c.send(raw)
        except rctest.Closed:
            pass
        r = c.read_response()
        eq(r.status, 431, "status for 1000 headers")
        c.wait_closed(3.0, allow_data=True)


def test_errors_leave_server_usable(srv):
    # After all the refusals above (run twice), a normal client still works.
    with srv.connect("/ws") as c:
        c.send_frame(OP_TEXT, "still here")
        c.expect_message(OP_TEXT, "still here")
        c.finish()


# --- timeouts -----------------------------------------------------------------------

@rctest.server(*TIMEOUT_ARGS)
def test_half_handshake_stall_closed(srv):
    with srv.raw() as c:
        t0 = time.monotonic()
        c.send(upgrade_request()[:40])
        try:
            c.read_response(timeout=4.0)  # a 408 is allowed before the close
        except rctest.Failure:
            pass
        c.wait_closed(4.0, allow_data=True)
        dt = time.monotonic() - t0
        check(dt >= 0.7, "closed after %.2fs, before --handshake-timeout 1" % dt)
        check(dt <= tmo(3.5), "closed after %.2fs, long after --handshake-timeout 1" % dt)


@rctest.server(*TIMEOUT_ARGS)
def test_silent_connection_closed(srv):
    with srv.raw() as c:
        t0 = time.monotonic()
        c.wait_closed(4.0, allow_data=True)
        dt = time.monotonic() - t0
        check(0.7 <= dt <= tmo(3.5), "silent connection closed after %.2fs" % dt)


@rctest.server(*TIMEOUT_ARGS)
def test_slow_but_progressing_handshake_completes(srv):
    # The timeout bounds the handshake; a client that finishes in time is served,
    # and the handshake timer must not fire on the upgraded connection.
    with srv.raw() as c:
        req = upgrade_request()
        c.send(req[:30])
        time.sleep(0.3)
        c.send(req[30:])
        r = c.read_response()
        eq(r.status, 101, "status")
        time.sleep(1.5)
        c.send_frame(OP_TEXT, "after the handshake timeout")
        c.expect_message(OP_TEXT, "after the handshake timeout")
        c.finish()


if __name__ == "__main__":
    rctest.main(globals())
