"""test_queue_tools.py - smtpd -Q lists, -q retries now, -q ID one, -D ID."""
import os
import re

from conftest import message


def defer_bob(world):
    """bob's Maildir becomes a symlink: his copy defers, alice's lands"""
    md = world.maildir("bob")
    os.rename(md, md + ".real")
    os.symlink(md + ".real", md)


def undefer_bob(world):
    md = world.maildir("bob")
    os.unlink(md)
    os.rename(md + ".real", md)


def queued_id(replies):
    m = re.search(r"queued as (\w+)", replies)
    assert m, replies
    return m.group(1)


def test_list_retry_now_and_delete(world):
    defer_bob(world)
    r1 = world.session(message(["alice@example.test", "bob@example.test"], "first"))
    r2 = world.session(message(["bob@example.test"] * 1 + ["alice@example.test"], "second"))
    id1, id2 = queued_id(r1), queued_id(r2)
    assert len(world.files("alice")) == 2
    rc, out, err = world.run("-Q")
    assert rc == 0, err
    assert id1 in out and id2 in out, out
    assert "to=<bob@example.test>" in out and "from=<sender@client.test>" in out, out
    assert "last error:" in out and "2 messages in the queue" in out, out
    # by hand: deleted, then the other retried now although its back-off runs
    rc, out, err = world.run("-D", id2)
    assert rc == 0, err
    assert re.search(r"%s deleted result=removed" % id2, world.logtext())
    assert not os.path.exists(os.path.join(world.spool, id2 + ".env"))
    undefer_bob(world)
    rc, out, err = world.run("-q")
    assert rc == 0, err
    assert "tried 1 queued message" in out, out
    assert len(world.files("bob")) == 1
    assert "first" in open(os.path.join(world.maildir("bob"), "new",
                                        world.files("bob")[0])).read()
    rc, out, err = world.run("-Q")
    assert "0 messages in the queue" in out, out


def test_retry_one_id(world):
    defer_bob(world)
    ids = [queued_id(world.session(message(["alice@example.test", "bob@example.test"],
                                           "m%d" % i))) for i in range(2)]
    undefer_bob(world)
    rc, out, err = world.run("-q", ids[1])
    assert rc == 0 and "tried 1 queued message" in out, (out, err)
    bodies = [open(os.path.join(world.maildir("bob"), "new", f)).read()
              for f in world.files("bob")]
    assert len(bodies) == 1 and "m1" in bodies[0]
    assert os.path.exists(os.path.join(world.spool, ids[0] + ".env"))


def test_bad_ids_refused(world):
    rc, out, err = world.run("-D", "../etc")
    assert rc == 100 and "cannot delete" in err, (rc, err)
    rc, out, err = world.run("-D", "NOSUCHID123")
    assert rc == 100 and "no such queued message" in err, (rc, err)
    rc, out, err = world.run("-q", "a/b")
    assert rc == 111, (rc, out, err)
    rc, out, err = world.run("-D")
    assert rc == 100 and "-D needs a queue id" in err
