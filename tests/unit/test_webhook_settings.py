"""WEBHOOK_* settings are checked at start with one readable line, as Telegram requires."""

from __future__ import annotations

import pytest

from bot.settings import ConfigError, load_settings


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WEBHOOK_URL": "https://bot.example.org/telegram"},
         "WEBHOOK_SECRET must be set when WEBHOOK_URL is"),
        ({"WEBHOOK_URL": "http://bot.example.org/telegram", "WEBHOOK_SECRET": "abc"},
         "WEBHOOK_URL must be https (Telegram posts only to https URLs); plain http is allowed "
         "only for 127.0.0.1 and localhost"),
        ({"WEBHOOK_URL": "bot.example.org", "WEBHOOK_SECRET": "abc"},
         "WEBHOOK_URL must be the public https URL"),
        ({"WEBHOOK_URL": "https://bot.example.org/t", "WEBHOOK_SECRET": "with space"},
         "WEBHOOK_SECRET must be 1-256 characters of A-Z, a-z, 0-9, _ and -"),
        ({"WEBHOOK_SECRET": "x" * 257}, "WEBHOOK_SECRET must be 1-256 characters"),
        ({"WEBHOOK_LISTEN": "8080"}, "WEBHOOK_LISTEN must be host:port"),
        ({"WEBHOOK_LISTEN": "0.0.0.0:70000"}, "WEBHOOK_LISTEN must be host:port"),
    ],
)
def test_bad_webhook_settings_are_one_line(monkeypatch, tmp_path, env, expected):
    monkeypatch.chdir(tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value).startswith(expected)
    assert "with space" not in str(caught.value) and "x" * 20 not in str(caught.value)


def test_good_webhook_settings(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WEBHOOK_URL", "http://localhost:8443/telegram")
    monkeypatch.setenv("WEBHOOK_SECRET", "A-z_09")
    settings = load_settings()
    assert settings.webhook_host_port == ("0.0.0.0", 8080)
    assert "A-z_09" in settings.secret_values()  # redacted from logs
    assert load_settings(webhook_listen="[::1]:9000").webhook_host_port == ("::1", 9000)


async def test_a_port_in_use_is_one_readable_line():
    import socket

    from aiohttp import web

    from bot.settings import ConfigError
    from bot.webhook import serving

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"WEBHOOK_LISTEN cannot listen on 127.0.0.1:{port}"):
            async with serving(web.Application(), "127.0.0.1", port, shutdown_timeout=1):
                pass
