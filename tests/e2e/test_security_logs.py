"""No secret reaches the logs (issue 10): a whole `chatmux run` at DEBUG, with keys, tokens,
passwords and URLs with credentials in play, is grepped for every secret the test set."""

from __future__ import annotations

import asyncio
import json
import signal

import pytest
import yaml
from sqlalchemy.engine import make_url

from tests.e2e.processes import CHATMUX, base_env
from tests.fakes.openai_api import FakeModelServer
from tests.harness import write_catalogue

ADMIN = 4242
SECRETS = {
    "ALPHA_KEY": "sk-alpha-key-in-logs-test-0001",
    "GAMMA_KEY": "sk-gamma-key-in-logs-test-0002",
    "POOL_SECRET": "pool-secret-in-logs-test-0003",
    "EXPORT_SALT": "export-salt-in-logs-test-0004",
}
URL_PASSWORD = "url-password-in-logs-0005"
DB_PASSWORD = "db-password-in-logs-0006"
QUERY_SECRET = "query-secret-in-logs-0007"


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_a_debug_run_logs_no_secret(tmp_path, telegram, database_url, redis_prefix,
                                          log_format):
    from tests.conftest import REDIS_URL

    async with (FakeModelServer({"alpha-served": 8192}, api_key=SECRETS["ALPHA_KEY"]) as alpha,
                FakeModelServer({"beta-served": 4096}) as beta,
                FakeModelServer({"gamma-served": 4096}, api_key=SECRETS["GAMMA_KEY"]) as gamma):
        path = write_catalogue(tmp_path / "models.yaml", alpha, beta={
            # An operator's URL with basic-auth credentials: used, never logged or shown.
            "base_url": beta.base_url.replace("//", f"//user:{URL_PASSWORD}@"),
            "api_key_env": None,
        })
        catalogue = yaml.safe_load(path.read_text())
        gamma_host = gamma.base_url.split("/")[2]
        catalogue["api_keys"] = {"GAMMA_KEY": [gamma_host]}
        path.write_text(yaml.safe_dump(catalogue))
        # Trust auth ignores the password, but it is in the URL the bot holds.
        db_url = make_url(database_url).set(password=DB_PASSWORD).render_as_string(
            hide_password=False)
        process = await asyncio.create_subprocess_exec(
            CHATMUX, "run", cwd=tmp_path, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=base_env(
                BOT_TOKEN=telegram.token, TELEGRAM_API_URL=telegram.base_url,
                DATABASE_URL=db_url, REDIS_URL=REDIS_URL, REDIS_PREFIX=redis_prefix,
                ADMIN_IDS=str(ADMIN), LOG_LEVEL="DEBUG", LOG_FORMAT=log_format, **SECRETS,
            ),
        )
        try:
            telegram.user_sends("hello alpha", chat_id=ADMIN)
            await telegram.wait_for_bot_messages(ADMIN, 1, timeout=30)
            steps = [
                "/model",  # a menu, then pick beta below
                f"/addmodel g url={gamma.base_url} model=gamma-served key_env=GAMMA_KEY",
                f"/addmodel x url=http://user:{URL_PASSWORD}@127.0.0.1:9/v1 model=m",
                f"/addmodel y url=http://127.0.0.1:9/v1?key={QUERY_SECRET} model=m",
                "/addmodel z url=http://127.0.0.1:9/v1 model=m key_env=BOT_TOKEN",
                "/models",
            ]
            for n, text in enumerate(steps, start=2):
                telegram.user_sends(text, chat_id=ADMIN)
                messages = await telegram.wait_for_bot_messages(ADMIN, n, timeout=30)
                if text == "/model":
                    menu = messages[-1]
                    data = next(b["callback_data"] for r in menu.reply_markup["inline_keyboard"]
                                for b in r if b["text"].endswith("Beta"))
                    query = telegram.user_presses(ADMIN, menu.message_id, data)
                    await telegram.wait_for(lambda q=query: q in telegram.callback_answers())
            assert messages[2].text.startswith("✅ g (g) added")
            telegram.user_sends("hello beta", chat_id=ADMIN)
            answer = await telegram.wait_for_bot_messages(ADMIN, len(steps) + 2, timeout=30)
            assert answer[-1].text == "[beta-served] hello beta"
        finally:
            process.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(process.communicate(), 30)
    log = stderr.decode()
    assert process.returncode == 0, log[-3000:]
    # The run really logged requests with those URLs (at DEBUG), redacted.
    assert "HTTP Request: POST http://***@127.0.0.1" in log
    assert [r.headers.get("authorization") for r in gamma.requests][:1] == [
        f"Bearer {SECRETS['GAMMA_KEY']}"]
    for secret in [*SECRETS.values(), URL_PASSWORD, DB_PASSWORD, QUERY_SECRET, telegram.token,
                   telegram.token.split(":")[1]]:
        assert secret not in log, f"{secret} leaked into the log"
    # The admin never sees the credentials of the catalogue's URL either.
    shown = " ".join(m.text or "" for m in telegram.bot_messages(ADMIN))
    assert URL_PASSWORD not in shown and "http://***@127.0.0.1" in shown
    if log_format == "json":  # one object a line; those of the last turn say whose it was
        records = [json.loads(line) for line in log.splitlines() if line.strip()]
        assert all(isinstance(r, dict) and r["message"] is not None for r in records)
        assert any(r.get("chat_id") == ADMIN and r.get("model") == "beta"
                   and isinstance(r.get("update_id"), int) for r in records)
