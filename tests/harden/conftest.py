"""conftest.py - the hardening tests' world (issue 11).

`world`: one test's smtptest.World (tests/lib, through tests/conftest.py's
T: stopped after the test, its log shown when it fails): alice and bob,
no spool yet (smtpd makes it; the spool tests make their own), settings
from the test's @pytest.mark.opts(...), and sessions that say they come
from 192.0.2.7.  A session is `world.pair_session()` (inetd style over a
socketpair: (smtptest.Client, Popen)); other modes (-q, -n) are
`world.cli(...)`.  Every wait is bounded.
"""
import pytest

HARDEN = {
    # the checks at the door have their own suite (tests/door): the slow
    # sessions here are meant to live
    "min_data_rate": "0",
}


@pytest.fixture
def world_defaults(request):
    marker = request.node.get_closest_marker("opts")
    return {"make_spool": False, "tcpremoteip": "192.0.2.7",
            "settings": dict(HARDEN, **(marker.kwargs if marker else {}))}


@pytest.fixture
def world(T):
    return T.world()


def pytest_configure(config):
    config.addinivalue_line("markers", "opts(**settings): smtpd settings for the world")


def greet(client, helo="client.example"):
    client.greeting()
    client.helo(helo)
