"""45_lua_jwt_keys - plugins/jwt_auth.lua with public keys, a JWKS and strict
claims, against tokens minted by an independent implementation (Debian's
python3-jwt, PyJWT, over python3-cryptography): every algorithm (HS256/384/512,
RS256/384/512, PS256, ES256, ES384, EdDSA) from a JWKS with several keys and a
secret; a PEM public key; wrong keys; each claim failure with its reason;
algorithm confusion (the RS256 public key's PEM bytes as an HS256 secret);
kid rotation across SIGHUP (the old key keeps working while it is in the set,
and is refused with unknown_kid once removed); refusals counted in /metrics
and logged at debug without the token; `roomcast -t` reading the key files."""

import base64
import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import sys
import time

import datetime

import jwt as pyjwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rctest  # noqa: E402
from rcadmin import admin_port, metrics, total  # noqa: E402
from rclua import Client, plugin, plugin_arg, script, wait_log  # noqa: E402
from rctest import BIN, check, eq  # noqa: E402

TMP = rctest.scratch_dir("rc45-")
SECRET = "a-secret-of-32-bytes-for-hs-algs"
ISSUER = "https://auth.example"
AUDIENCE = "chat"


def path(name):
    return os.path.join(TMP, name)


def write(name, data):
    p = path(name)
    tmp = p + ".tmp"
    with open(tmp, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    os.rename(tmp, p)  # atomic, as an operator rotating keys should
    return p


def b64url_uint(n, size=None):
    size = size or (n.bit_length() + 7) // 8
    return base64.urlsafe_b64encode(n.to_bytes(size, "big")).rstrip(b"=").decode()


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def public_jwk(key, kid, alg=None):
    """The public JWK (RFC 7517/7518/8037) of a cryptography private key."""
    pub = key.public_key()
    if isinstance(key, rsa.RSAPrivateKey):
        n = pub.public_numbers()
        j = {"kty": "RSA", "n": b64url_uint(n.n), "e": b64url_uint(n.e)}
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        n = pub.public_numbers()
        size = (key.curve.key_size + 7) // 8
        crv = {"secp256r1": "P-256", "secp384r1": "P-384"}[key.curve.name]
        j = {"kty": "EC", "crv": crv, "x": b64url_uint(n.x, size), "y": b64url_uint(n.y, size)}
    else:
        raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        j = {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}
    j["kid"] = kid
    j["use"] = "sig"
    if alg:
        j["alg"] = alg
    return j


def pem(key):
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


RSA1 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
P256 = ec.generate_private_key(ec.SECP256R1())
P384 = ec.generate_private_key(ec.SECP384R1())
ED = ed25519.Ed25519PrivateKey.generate()
# Same types, never configured: the "wrong key" of each algorithm.
OTHER = {"rsa": RSA2, "p256": ec.generate_private_key(ec.SECP256R1()),
         "p384": ec.generate_private_key(ec.SECP384R1()),
         "ed": ed25519.Ed25519PrivateKey.generate(), "hs": "not-the-secret-not-the-secret!!"}

# alg -> (signing key, kid or None, kind)
ALGS = {
    "HS256": (SECRET, None, "hs"), "HS384": (SECRET, None, "hs"), "HS512": (SECRET, None, "hs"),
    "RS256": (RSA1, "rsa-1", "rsa"), "RS384": (RSA1, "rsa-1", "rsa"),
    "RS512": (RSA1, "rsa-1", "rsa"), "PS256": (RSA1, "rsa-1", "rsa"),
    "ES256": (P256, "ec-256", "p256"), "ES384": (P384, "ec-384", "p384"),
    "EdDSA": (ED, "ed-1", "ed"),
}

JWKS = write("all.json", json.dumps({"keys": [
    public_jwk(RSA1, "rsa-1"), public_jwk(P256, "ec-256", "ES256"),
    public_jwk(P384, "ec-384"), public_jwk(ED, "ed-1", "EdDSA"),
    # skipped, not fatal (RFC 7517 §5): an encryption key and a curve we do not verify
    dict(public_jwk(RSA2, "enc-1"), use="enc"),
    {"kty": "EC", "crv": "P-521", "kid": "p521", "x": "AA", "y": "AA"},
]}))
RSA_PEM = write("rsa1.pem", pem(RSA1))
ROTATING = write("rotating.json", json.dumps({"keys": [public_jwk(P256, "k1")]}))


def jwt_args(cfg):
    base = {"auth_timeout": 0}
    base.update(cfg)
    return ("-s", script("chat.lua"), "--admin", "127.0.0.1:0", "--log-level", "debug",
            "--plugin", plugin_arg("jwt_auth", base))


ALL_ARGS = jwt_args({"algorithms": sorted(ALGS), "secret": SECRET, "jwks": JWKS,
                     "issuer": ISSUER, "audience": AUDIENCE, "leeway": 5, "max_age": 3600})
PEM_ARGS = jwt_args({"algorithms": ["RS256", "PS256"], "public_key": RSA_PEM})
CONFUSION_ARGS = jwt_args({"algorithms": ["RS256", "HS256"], "public_key": RSA_PEM})
ROTATE_ARGS = jwt_args({"algorithms": ["ES256"], "jwks": ROTATING})


def claims(sub="u", **over):
    now = int(time.time())
    c = {"sub": sub, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def mint(alg, key=None, kid=None, headers=None, **over):
    k, default_kid, _ = ALGS[alg]
    h = dict(headers or {})
    kid = kid if kid is not None else default_kid
    if kid:
        h["kid"] = kid
    return pyjwt.encode(claims(**over), key if key is not None else k, algorithm=alg,
                        headers=h or None)


def upgrade(srv, token):
    """-> (status, body text) of an upgrade with ?token=."""
    c = srv.raw()
    try:
        c.send(rctest.upgrade_request("/ws?token=" + token))
        r = c.read_response()
        return r.status, (r.reason + " " + r.body.decode("utf-8", "replace"))
    finally:
        c.close()


def accepted(srv, token, what):
    status, body = upgrade(srv, token)
    eq(status, 101, "%s: accepted (%s)" % (what, body.strip()))


def refused(srv, token, reason, what):
    status, body = upgrade(srv, token)
    eq(status, 401, "%s: refused" % what)
    check("(%s)" % reason in body, "%s: reason %s in %r" % (what, reason, body))


@rctest.server(*ALL_ARGS)
def test_every_algorithm_from_jwks_and_secret(srv):
    for alg in sorted(ALGS):
        accepted(srv, mint(alg, sub="u-" + alg), alg)
    # the auth message path, with the identity
    c = Client(srv)
    c.send({"type": "auth", "token": mint("EdDSA", sub="edward"), "id": 1})
    c.expect(type="authenticated", user_id="edward", id=1)
    c.close()


@rctest.server(*ALL_ARGS)
def test_wrong_keys_refused(srv):
    for alg, (_, kid, kind) in sorted(ALGS.items()):
        refused(srv, mint(alg, key=OTHER[kind], kid=kid), "bad_signature", "%s, other key" % alg)
    # right key, but a kid naming another key of the set
    refused(srv, mint("ES256", kid="rsa-1"), "no_key", "ES256 under the RSA kid")
    refused(srv, mint("RS256", kid="gone"), "unknown_kid", "unknown kid")
    # the JWK of ec-256 says alg ES256: not a key for ES384 even with its kid
    refused(srv, mint("ES384", kid="ec-256"), "no_key", "ES384 under an ES256-only JWK")
    # the skipped encryption key is not usable
    refused(srv, mint("RS256", key=RSA2, kid="enc-1"), "unknown_kid", "enc key skipped")


@rctest.server(*ALL_ARGS)
def test_each_claim_failure(srv):
    now = int(time.time())
    cases = [
        ({"exp": now - 60}, "expired"),
        ({"nbf": now + 600}, "not_yet_valid"),
        ({"iat": now + 600}, "issued_in_future"),
        ({"iat": now - 7200}, "too_old"),
        ({"iat": None}, "missing_iat"),
        ({"iss": "https://evil.example"}, "bad_issuer"),
        ({"iss": None}, "bad_issuer"),
        ({"aud": "billing"}, "bad_audience"),
        ({"aud": ["billing", "ops"]}, "bad_audience"),
        ({"aud": None}, "bad_audience"),
        ({"sub": 123}, "bad_subject"),
        ({"sub": ""}, "bad_subject"),
        ({"sub": "x" * 129}, "bad_subject"),
        ({"exp": "tomorrow"}, "bad_claim"),
    ]
    for over, reason in cases:
        sub = over.pop("sub", "u")
        refused(srv, pyjwt.encode(claims(sub=sub, **over), SECRET, algorithm="HS256"), reason,
                "%r" % over)
    # within leeway (5 s), aud as an array naming us, a 128-byte sub
    accepted(srv, pyjwt.encode(claims(exp=now - 2), SECRET, algorithm="HS256"), "exp in leeway")
    accepted(srv, pyjwt.encode(claims(nbf=now + 2), SECRET, algorithm="HS256"), "nbf in leeway")
    accepted(srv, pyjwt.encode(claims(aud=["billing", AUDIENCE]), SECRET, algorithm="HS256"),
             "aud array")
    accepted(srv, pyjwt.encode(claims(sub="x" * 128), SECRET, algorithm="HS256"), "128-byte sub")
    # header refusals
    refused(srv, pyjwt.encode(claims(), None, algorithm="none"), "malformed", "alg none")
    unsigned = "%s.%s.%s" % (b64url(b'{"alg":"none"}'), b64url(json.dumps(claims()).encode()),
                             b64url(b"x"))
    refused(srv, unsigned, "bad_alg", "alg none with a signature")
    refused(srv, mint("HS256", headers={"crit": ["exp"]}), "unsupported_crit", "crit")
    refused(srv, "garbage", "malformed", "garbage")
    # too long for an upgrade request head: in auth messages
    c = Client(srv)
    for tok, reason in (("a" * 20000, "malformed"), ("e30." + "A" * 9000 + ".AA", "too_big")):
        c.send({"type": "auth", "token": tok})
        m = c.expect_error("not_authorized")
        check("(%s)" % reason in m["message"], "%s in %r" % (reason, m["message"]))
    c.close()


@rctest.server(*PEM_ARGS)
def test_pem_public_key(srv):
    accepted(srv, mint("RS256", kid=""), "RS256 with the PEM key")
    accepted(srv, mint("PS256", kid="whatever"), "PS256, kid ignored for an unnamed key")
    refused(srv, mint("RS256", key=RSA2, kid=""), "bad_signature", "RS256, other key")
    refused(srv, mint("RS384", kid=""), "bad_alg", "RS384 not in the list")
    refused(srv, mint("HS256", key=SECRET), "bad_alg", "HS256 not in the list")


@rctest.server(*CONFUSION_ARGS)
def test_algorithm_confusion(srv):
    # RFC 8725 §2.1: HS256 "signed" with the RS256 public key's PEM bytes as
    # the HMAC secret. PyJWT itself refuses to make it, so it is made here.
    pem_bytes = open(RSA_PEM, "rb").read()
    for key in (pem_bytes, pem_bytes.strip()):
        h = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        p = b64url(json.dumps(claims(sub="mallory")).encode())
        sig = hmac.new(key, ("%s.%s" % (h, p)).encode(), hashlib.sha256).digest()
        refused(srv, "%s.%s.%s" % (h, p, b64url(sig)), "no_key", "HS256 with the PEM as secret")
    accepted(srv, mint("RS256", kid=""), "the honest RS256 token")


def reload_and_wait(srv, keys):
    """Writes the rotating JWKS, sends SIGHUP, waits for every worker's new state."""
    write("rotating.json", json.dumps({"keys": keys}))
    nw = workers(srv)
    base = len([l for l in srv.log() if "reload: generation" in l])
    srv.proc.send_signal(signal.SIGHUP)
    wait_log(srv, "reload: generation", base + nw)


def workers(srv):
    wait_log(srv, "roomcast started:")
    m = re.search(r"started: (\d+) worker", "\n".join(srv.log()))
    return int(m.group(1)) if m else 1


@rctest.server(*ROTATE_ARGS)
def test_kid_rotation_across_sighup(srv):
    old, new = P256, OTHER["p256"]
    reload_and_wait(srv, [public_jwk(old, "k1")])  # the same start on the repeat run
    accepted(srv, mint("ES256", key=old, kid="k1"), "k1 before rotation")
    refused(srv, mint("ES256", key=new, kid="k2"), "unknown_kid", "k2 before it is published")
    # a connection authenticated before the rotation stays
    c = Client(srv, "/ws?token=" + mint("ES256", key=old, kid="k1", sub="early"))
    reload_and_wait(srv, [public_jwk(old, "k1"), public_jwk(new, "k2")])
    accepted(srv, mint("ES256", key=new, kid="k2"), "k2 after it is published")
    accepted(srv, mint("ES256", key=old, kid="k1"), "k1 while still in the set")
    reload_and_wait(srv, [public_jwk(new, "k2")])
    refused(srv, mint("ES256", key=old, kid="k1"), "unknown_kid", "k1 after removal")
    accepted(srv, mint("ES256", key=new, kid="k2"), "k2 after k1's removal")
    c.send({"type": "join", "room_id": "after-rotation"})
    c.expect(type="joined")
    c.close()
    # a broken key file fails the reload; the keys in use stay
    base = len([l for l in srv.log() if "reload failed" in l])
    write("rotating.json", "{not json")
    srv.proc.send_signal(signal.SIGHUP)
    wait_log(srv, "reload failed", base + workers(srv))
    accepted(srv, mint("ES256", key=new, kid="k2"), "k2 after a failed reload")


@rctest.server(*ALL_ARGS)
def test_refusals_counted_and_logged_without_token(srv):
    port = admin_port(srv)
    name = "roomcast_jwt_refusals_by_reason_total"
    before = metrics(port)
    tok = pyjwt.encode(claims(exp=int(time.time()) - 60), SECRET, algorithm="HS256")
    for _ in range(3):
        refused(srv, tok, "expired", "expired")
    refused(srv, mint("RS256", kid="gone"), "unknown_kid", "unknown kid")
    after = metrics(port)
    eq(total(after, name, reason="expired") - total(before, name, reason="expired"), 3,
       "expired counted")
    eq(total(after, name, reason="unknown_kid") - total(before, name, reason="unknown_kid"), 1,
       "unknown_kid counted")
    check(total(after, name, reason="bad_signature") >= 0, "every reason is listed")
    lines = wait_log(srv, "token refused: expired", 3)
    for part in tok.split("."):
        check(all(part not in l for l in srv.log()), "a token part in the log")
    check(all("conn" in l for l in lines), "the conn id is logged: %r" % lines[:1])


def check_t(cfg):
    conf = os.path.join(TMP, "t.lua")
    with open(conf, "w") as f:
        f.write("return { script = %s, plugins = { { name = 'jwt', path = %s, config = %s } } }\n"
                % (json.dumps(script("chat.lua")), json.dumps(plugin("jwt_auth.lua")),
                   lua_table(cfg)))
    p = subprocess.run([BIN, "-t", "-c", conf], capture_output=True, text=True, timeout=20)
    return p.returncode, p.stdout + p.stderr


def lua_table(v):
    if isinstance(v, dict):
        return "{" + ", ".join("[%s] = %s" % (json.dumps(k), lua_table(x)) for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "{" + ", ".join(lua_table(x) for x in v) + "}"
    return json.dumps(v)


def test_check_flag_reads_key_files(_srv):
    rc, out = check_t({"algorithms": ["RS256"], "jwks": JWKS})
    eq(rc, 0, "good JWKS (%s)" % out.strip())
    rc, out = check_t({"algorithms": ["RS256"], "jwks": path("missing.json")})
    eq(rc, 1, "missing JWKS")
    check("missing.json" in out, "names the file: %r" % out)
    bad = write("private.json", json.dumps({"keys": [dict(public_jwk(ED, "x"), d="AAAA")]}))
    rc, out = check_t({"algorithms": ["EdDSA"], "jwks": bad})
    eq(rc, 1, "a JWKS with a private key")
    check("private" in out, "says why: %r" % out)
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    rc, out = check_t({"algorithms": ["RS256"], "public_key": write("small.pem", pem(small))})
    eq(rc, 1, "a 1024-bit RSA key")
    check("2048" in out, "says why: %r" % out)
    # a PKCS#1 "RSA PUBLIC KEY" and a certificate (its subject's key) load too
    pkcs1 = write("pkcs1.pem", RSA1.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.PKCS1))
    rc, out = check_t({"algorithms": ["RS256"], "public_key": pkcs1})
    eq(rc, 0, "PKCS#1 PEM (%s)" % out.strip())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "auth.example")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(P256.public_key()).serial_number(1)
            .not_valid_before(datetime.datetime(2020, 1, 1))
            .not_valid_after(datetime.datetime(2040, 1, 1)).sign(P256, hashes.SHA256()))
    rc, out = check_t({"algorithms": ["ES256"],
                       "public_key": write("cert.pem", cert.public_bytes(serialization.Encoding.PEM))})
    eq(rc, 0, "certificate PEM (%s)" % out.strip())
    rc, out = check_t({"jwks": JWKS})
    eq(rc, 1, "no algorithms with a JWKS")
    check("algorithms is required" in out, "says why: %r" % out)


if __name__ == "__main__":
    rctest.main(globals(), default_args=ALL_ARGS)
