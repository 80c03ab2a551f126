"""OpenDKIM (Debian's opendkim) as a milter, offline: one instance signs
(mode s, a key opendkim-genkey made for the test), a second verifies
(mode v) with the public key from its TestPublicKeys file instead of
DNS.  A message passes through an smtpd with the signer, then the signed
copy it stored goes through an smtpd with the verifier, as an MX sees
it: OpenDKIM's Authentication-Results says dkim=pass; a copy whose body
changed on the way says dkim=fail and is still delivered (OpenDKIM's
default for a bad signature)."""
import pytest

import daemons
from conftest import _need, send, message, log, stored


@pytest.fixture(scope="module")
def dkim():
    _need("opendkim", "opendkim-genkey")
    signer = daemons.start_opendkim("s")
    try:
        verifier = daemons.start_opendkim("v", key_dir=signer.dir)
    except daemons.DaemonError:
        signer.stop()
        raise
    yield signer, verifier
    verifier.stop()
    signer.stop()


def resend(stored_msg):
    """the stored copy as a sender passes it on: our own Return-Path and
    Delivered-To lines off, the rest as it is"""
    lines = stored_msg.decode().split("\n")
    assert lines[0].startswith("Return-Path:") and lines[1].startswith("Delivered-To:")
    return "\n".join(lines[2:])


def header(msg, name):
    head = msg.split(b"\n\n", 1)[0].decode()
    unfolded = head.replace("\n\t", " ").replace("\n ", " ")
    return [l for l in unfolded.split("\n") if l.lower().startswith(name.lower() + ":")]


def test_sign_then_verify(dkim, world):
    signer, verifier = dkim
    out = world({"milters": signer.spec})
    _rr, end = send(out, message("dkim", body="Signed body.\n"), sender="sender@example.org")
    assert end.code == 250, end
    [signed] = stored(out)
    [sig] = header(signed, "DKIM-Signature")
    assert "d=example.org" in sig and "s=sel" in sig, sig
    assert "headers=ins:DKIM-Signature" in log(out)   # inserted on top

    mx = world({"milters": verifier.spec})
    _rr, end = send(mx, resend(signed), sender="sender@example.org")
    assert end.code == 250, end
    [got] = stored(mx)
    ar = header(got, "Authentication-Results")
    assert any("mx.test" in a and "dkim=pass" in a and "header.d=example.org" in a
               for a in ar), ar
    assert got.split(b"\n\n", 1)[1] == b"Signed body.\n"

    tampered = resend(signed).replace("Signed body.", "Changed body.")
    _rr, end = send(mx, tampered, sender="sender@example.org")
    assert end.code == 250, end
    got = [m for m in stored(mx) if b"Changed body." in m]
    assert len(got) == 1
    ar = header(got[0], "Authentication-Results")
    assert any("dkim=fail" in a for a in ar), ar
