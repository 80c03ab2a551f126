"""ClamAV: clamd with a signature file we wrote, clamav-milter in front;
rspamd and ClamAV chained in order."""
import base64

from conftest import send, message, log, stored
import daemons


def attachment(payload):
    b64 = base64.encodebytes(payload).decode()
    return message("attachment", body=(
        "--BOUND\nContent-Type: text/plain\n\nsee attached\n"
        "--BOUND\nContent-Type: application/octet-stream; name=\"x.com\"\n"
        "Content-Transfer-Encoding: base64\n"
        "Content-Disposition: attachment; filename=\"x.com\"\n\n%s--BOUND--\n" % b64),
        extra="MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"BOUND\"\n")


def test_eicar_rejected_with_virus_name(clamav, world):
    env = world({"milters": clamav.spec})
    _rr, end = send(env, attachment(daemons.EICAR))
    assert end.code == 550 and "Smtpd.Test.EICAR" in end.text, end
    env.assert_nothing_stored()
    assert env.spool_files() == []


def test_clean_attachment_delivered(clamav, world):
    env = world({"milters": clamav.spec})
    msg = attachment(b"harmless bytes\n")
    _rr, end = send(env, msg)
    assert end.code == 250, end
    [m] = stored(env)
    assert b"\nX-Virus-Status: Clean\n" in m
    assert m.endswith(msg.split("\n\n", 1)[1].encode())


def test_chain_order_and_first_reject_wins(rspamd, clamav, world):
    both = "%s, %s" % (rspamd.spec, clamav.spec)
    env = world({"milters": both})
    # clean: both add their headers, in milter order
    _rr, end = send(env, attachment(b"harmless\n"))
    assert end.code == 250, end
    [m] = stored(env)
    assert m.index(b"\nX-Spamd-Result: ") < m.index(b"\nX-Virus-Scanned: ")
    # GTUBE and EICAR: rspamd is first, so its reject is the reply
    _rr, end = send(env, attachment(daemons.EICAR).replace(
        "see attached", daemons.GTUBE))
    assert end.code == 554 and "Gtube" in end.text, end
    # reversed order: ClamAV's reject wins
    env2 = world({"milters": "%s,%s" % (clamav.spec, rspamd.spec)})
    _rr, end = send(env2, attachment(daemons.EICAR).replace(
        "see attached", daemons.GTUBE))
    assert end.code == 550 and "Smtpd.Test.EICAR" in end.text, end
    env2.assert_nothing_stored()
    assert len(stored(env)) == 1
    assert "result=reject" in log(env2)
