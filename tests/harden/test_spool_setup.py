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

from conftest import IS_ROOT, MAIL_UID, session_account

HERE = os.path.dirname(os.path.abspath(__file__))

pytestmark = pytest.mark.skipif(not IS_ROOT, reason="spool ownership needs root")


def start(world, **opts):
    """one start that sets the spool up (a queue run); its exit code"""
    return world.run("-q", **opts).returncode


def test_new_spool_belongs_to_the_session_account(world):
    assert start(world) == 0
    st = os.lstat(world.spool)
    assert stat.S_ISDIR(st.st_mode)
    assert st.st_uid == session_account().pw_uid
    assert stat.S_IMODE(st.st_mode) == 0o700


def test_existing_spool_fixed_by_descriptor(world):
    os.mkdir(world.spool, 0o755)          # root's, too open for mail
    assert start(world) == 0
    st = os.lstat(world.spool)
    assert st.st_uid == session_account().pw_uid
    assert stat.S_IMODE(st.st_mode) == 0o700


def test_world_writable_spool_refused(world):
    os.mkdir(world.spool)
    os.chmod(world.spool, 0o777)          # anyone could have planted envelopes
    assert start(world) == 111
    assert stat.S_IMODE(os.lstat(world.spool).st_mode) == 0o777
    r = world.run("-n")
    assert r.returncode == 1
    assert b"unsafe spool" in r.stderr and b"writable by others" in r.stderr


def test_spool_of_another_owner_refused(world):
    os.mkdir(world.spool, 0o700)
    os.chown(world.spool, MAIL_UID, MAIL_UID)
    assert start(world) == 111
    assert os.lstat(world.spool).st_uid == MAIL_UID
    r = world.run("-n")
    assert r.returncode == 1 and b"owned by uid %d" % MAIL_UID in r.stderr


def test_spool_symlink_refused(world):
    target = os.path.join(world.dir, "root-only")
    os.mkdir(target, 0o700)
    os.symlink(target, world.spool)
    assert start(world) == 111
    assert os.lstat(target).st_uid == 0
    assert b"unsafe spool" in world.run("-n").stderr


def test_parent_writable_by_others_refused(world):
    parent = os.path.join(world.dir, "shared")
    os.mkdir(parent)
    os.chmod(parent, 0o1777)              # spool_dir=/tmp/... by mistake
    spool = os.path.join(parent, "spool")
    assert start(world, spool_dir=spool) == 111
    assert not os.path.exists(spool)
    r = world.run("-n", spool_dir=spool)
    assert r.returncode == 1 and b"parent" in r.stderr


def test_chown_race_never_reaches_a_root_file(world):
    """the audit's race: the spool swapped for a symlink while root starts"""
    parent = os.path.join(world.dir, "shared")
    os.mkdir(parent)
    os.chmod(parent, 0o777)
    spool = os.path.join(parent, "spool")
    secret = os.path.join(world.dir, "secret")
    with open(secret, "w") as f:
        f.write("root only\n")
    os.chmod(secret, 0o600)
    exe = os.path.join(world.dir, "swapper")
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
    opts = dict(world.opts)
    del opts["session_user"]
    world.opts = opts
    r = world.run("-n")
    assert b"session_user = smtpd\n" in r.stdout


def test_check_refuses_nobody(world):
    r = world.run("-n", session_user="nobody")
    assert r.returncode == 1
    assert b"session_user nobody" in r.stderr
