"""The installed `chatmux` command itself: polling Telegram, and the console without a token."""

from __future__ import annotations

import asyncio
import signal

from tests.e2e.processes import CHATMUX, base_env, start_run
from tests.harness import write_catalogue


async def console(tmp_path, models, typed: bytes) -> tuple[int | None, str, str]:
    """`chatmux run` without a token in a fresh directory, fed `typed` on stdin: (exit code,
    stdout, stderr)."""
    write_catalogue(tmp_path / "models.yaml", models)
    process = await asyncio.create_subprocess_exec(
        CHATMUX, "run", cwd=tmp_path,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=base_env(ALPHA_KEY="sk-test-alpha"),
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(typed), 60)
    return process.returncode, stdout.decode(), stderr.decode()


async def test_chatmux_run_serves_telegram_and_stops_on_sigterm(
    tmp_path, telegram, models, database_url, redis_prefix
):
    write_catalogue(tmp_path / "models.yaml", models)
    process = await start_run(tmp_path, telegram, database_url, redis_prefix)
    try:
        telegram.user_sends("hello from a real process", chat_id=2002)
        [answer] = await telegram.wait_for_bot_messages(2002, 1, timeout=30)
        assert answer.text == "[alpha-served] hello from a real process"
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, stderr.decode()
    log = stderr.decode()
    assert "Traceback" not in log
    assert "sk-test-alpha" not in log and telegram.token not in log  # secrets never logged


async def test_chatmux_run_without_a_token_starts_the_console(tmp_path, models):
    """A fresh directory, the README's set-up (a models.yaml), the embedded SQLite default."""
    code, out, err = await console(tmp_path, models,
                                   b"/start\nhello console\n/model\n2\nand beta?\n")
    assert code == 0, err
    assert err.splitlines()[0].startswith("BOT_TOKEN is not set, so chatmux starts in the")
    assert "Hi, You!" in out
    assert "chatmux › [alpha-served] hello console" in out
    assert "[2] Beta" in out
    assert "chatmux › [beta-served] and beta?" in out
    assert (tmp_path / "chatmux.db").exists()  # the embedded default database


async def test_console_survives_odd_numbers_while_buttons_are_shown(tmp_path, models):
    code, out, err = await console(tmp_path, models, "/model\n²\n/model\n".encode()
                                   + b"9" * 5000 + b"\n\xff\xfe not UTF-8\nstill there?\n")
    assert code == 0, err
    assert "Traceback" not in err
    assert "chatmux › [alpha-served] ²" in out  # not a button number: a question
    assert "chatmux › [alpha-served] \ufffd\ufffd not UTF-8" in out
    assert "chatmux › [alpha-served] still there?" in out
