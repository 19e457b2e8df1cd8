"""Which services a test session uses: configured, already running, or throwaway ones."""

from __future__ import annotations

import os
import socket

import pytest

from tests import embedded_services

VARIABLES = ("TEST_DATABASE_URL", "TEST_REDIS_URL")


@pytest.fixture
def session(monkeypatch):
    """use_services() with the starts recorded instead of made and the ports in `listening`."""
    for variable in (*VARIABLES, embedded_services.MODE_VARIABLE):
        # setenv first: monkeypatch then restores what was there (use_services writes
        # os.environ itself), absent or not.
        monkeypatch.setenv(variable, "")
        monkeypatch.delenv(variable)
    listening: set[int] = set()
    monkeypatch.setattr(embedded_services, "answers", lambda port, host="127.0.0.1":
                        port in listening)
    monkeypatch.setattr(embedded_services, "_start_postgres", lambda: "postgresql+asyncpg://pg")
    monkeypatch.setattr(embedded_services, "_start_redis", lambda: "redis://redis")
    return listening


def test_nothing_configured_or_running_starts_both(session):
    assert embedded_services.use_services() == {"TEST_DATABASE_URL": "postgresql+asyncpg://pg",
                                                "TEST_REDIS_URL": "redis://redis"}


def test_services_on_the_default_ports_are_used_as_before(session):
    session.update({5432, 6379})
    assert embedded_services.use_services() == {}
    assert "TEST_DATABASE_URL" not in os.environ


def test_each_service_is_decided_on_its_own(session, monkeypatch):
    session.add(6379)
    assert embedded_services.use_services() == {"TEST_DATABASE_URL": "postgresql+asyncpg://pg"}
    monkeypatch.setenv("TEST_DATABASE_URL", "postgresql+asyncpg://mine/db")
    session.clear()
    assert embedded_services.use_services() == {"TEST_REDIS_URL": "redis://redis"}


def test_forced_embedded_replaces_configured_and_running_services(session, monkeypatch):
    session.update({5432, 6379})
    monkeypatch.setenv("TEST_DATABASE_URL", "postgresql+asyncpg://mine/db")
    monkeypatch.setenv(embedded_services.MODE_VARIABLE, "embedded")
    assert set(embedded_services.use_services()) == set(VARIABLES)
    assert os.environ["TEST_DATABASE_URL"] == "postgresql+asyncpg://pg"


def test_an_unknown_mode_is_refused(session, monkeypatch):
    monkeypatch.setenv(embedded_services.MODE_VARIABLE, "docker")
    with pytest.raises(RuntimeError, match="'auto' or 'embedded'"):
        embedded_services.use_services()


def test_answers_tells_a_listening_port_from_a_closed_one():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert embedded_services.answers(port)
    assert not embedded_services.answers(port)
