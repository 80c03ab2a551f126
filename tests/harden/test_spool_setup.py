"""test_spool_setup.py - findings 5 and 6: the spool's set-up and its owner.

Root used to mkdir / lstat / chown the spool by path at every start: a
local user who can write the spool's parent swapped in a symlink and
had root chown a root-only file; a pre-created 0777 spool was accepted.
Now the parent must be writable by no one else, the spool is opened
with O_NOFOLLOW|O_DIRECTORY and fixed through its descriptor, and
`smtpd -n` says what is unsafe.  The session runs as a dedicated
account `smtpd`, and `smtpd -n` refuses `nobody`.
"""
import os
import stat
import subprocess
import time

import pytest

import smtptest as S
from smtptest import MAIL_UID, SESSION_UID

HERE = os.path.dirname(os.path.abspath(__file__))

pytestmark = pytest.mark.skipif(not S.IS_ROOT, reason="spool ownership needs root")


def start(world, **opts):
    """one start that sets the spool up (a queue run); its exit code"""
    return world.cli("-q", extra=opts)[0]


def test_new_spool_belongs_to_the_session_account(world):
    assert start(world) == 0
    st = os.lstat(world.spool)
    assert stat.S_ISDIR(st.st_mode)
    assert st.st_uid == SESSION_UID
    assert stat.S_IMODE(st.st_mode) == 0o700


def test_existing_spool_fixed_by_descriptor(world):
    os.mkdir(world.spool, 0o755)          # root's, too open for mail
    assert start(world) == 0
    st = os.lstat(world.spool)
    assert st.st_uid == SESSION_UID
    assert stat.S_IMODE(st.st_mode) == 0o700


def test_world_writable_spool_refused(world):
    os.mkdir(world.spool)
    os.chmod(world.spool, 0o777)          # anyone could have planted envelopes
    assert start(world) == 111
    assert stat.S_IMODE(os.lstat(world.spool).st_mode) == 0o777
    rc, _out, err = world.cli("-n")
    assert rc == 1
    assert "unsafe spool" in err and "writable by others" in err


def test_spool_of_another_owner_refused(world):
    os.mkdir(world.spool, 0o700)
    os.chown(world.spool, MAIL_UID, MAIL_UID)
    assert start(world) == 111
    assert os.lstat(world.spool).st_uid == MAIL_UID
    rc, _out, err = world.cli("-n")
    assert rc == 1 and "owned by uid %d" % MAIL_UID in err


def test_spool_symlink_refused(world):
    target = world.path("root-only")
    os.mkdir(target, 0o700)
    os.symlink(target, world.spool)
    assert start(world) == 111
    assert os.lstat(target).st_uid == 0
    assert "unsafe spool" in world.cli("-n")[2]


def test_parent_writable_by_others_refused(world):
    parent = world.path("shared")
    os.mkdir(parent)
    os.chmod(parent, 0o1777)              # spool_dir=/tmp/... by mistake
    spool = os.path.join(parent, "spool")
    assert start(world, spool_dir=spool) == 111
    assert not os.path.exists(spool)
    rc, _out, err = world.cli("-n", extra={"spool_dir": spool})
    assert rc == 1 and "parent" in err


def test_chown_race_never_reaches_a_root_file(world):
    """the audit's race: the spool swapped for a symlink while root starts"""
    parent = world.path("shared")
    os.mkdir(parent)
    os.chmod(parent, 0o777)
    spool = os.path.join(parent, "spool")
    secret = world.path("secret")
    with open(secret, "w") as f:
        f.write("root only\n")
    os.chmod(secret, 0o600)
    exe = world.path("swapper")
    subprocess.run(["cc", "-O2", "-o", exe, os.path.join(HERE, "swapper.c")],
                   check=True, timeout=60)
    attacker = subprocess.Popen([exe, spool, secret, str(MAIL_UID)])
    try:
        end = time.time() + 20
        tries = 0
        while time.time() < end and tries < 300:
            start(world, spool_dir=spool)
            tries += 1
            assert os.stat(secret).st_uid == 0, \
                "root chowned a root-only file after %d tries" % tries
    finally:
        attacker.kill()
        attacker.wait(timeout=10)


def test_default_session_user_is_dedicated(world):
    del world.settings["session_user"]
    assert "session_user = smtpd\n" in world.cli("-n")[1]


def test_check_refuses_nobody(world):
    rc, _out, err = world.cli("-n", extra={"session_user": "nobody"})
    assert rc == 1
    assert "session_user nobody" in err
