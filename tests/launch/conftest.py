"""tests/launch: smtpd under every launcher; smtpd makes its own spool here"""
import pytest


@pytest.fixture
def world_defaults():
    return {"make_spool": False, "settings": {"queue_interval": "0"}}
