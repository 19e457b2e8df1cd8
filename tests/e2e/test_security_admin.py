"""Security of admin power (issue 10): keys go only where the operator allowed them, and admin
commands live only in admins' private chats."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from tests.e2e.helpers import rows
from tests.e2e.test_admin import ADMIN, say
from tests.fakes.openai_api import FakeModelServer
from tests.harness import running_bot

GAMMA_KEY = "sk-gamma-key-0123456789"
GROUP = -100777


@pytest.fixture
async def evil():
    """A server an attacker controls: it serves what it is asked for and records everything."""
    async with FakeModelServer({"m": 4096}) as server:
        yield server


@pytest.fixture
async def gamma():
    """A model server that needs GAMMA_KEY, granted by the operator in `api_keys:`."""
    async with FakeModelServer({"gamma-served": 4096}, api_key=GAMMA_KEY) as server:
        yield server


@pytest.fixture
async def keyed_bot(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix, gamma):
    port = gamma.base_url.split(":")[2].split("/")[0]
    top = {"api_keys": {"GAMMA_KEY": [f"127.0.0.1:{port}", f"localhost:{port}"]}}
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix,
                           catalogue_top=top, ADMIN_IDS=str(ADMIN), GAMMA_KEY=GAMMA_KEY,
                           EXPORT_SALT="salt-that-must-stay-secret",
                           POOL_SECRET="pool-secret-0123456789") as settings:
        yield settings


async def test_an_admin_cannot_send_the_bots_secrets_anywhere(keyed_bot, telegram, evil, db):
    replies = {}
    for name in ("BOT_TOKEN", "DATABASE_URL", "EXPORT_SALT", "POOL_SECRET", "PATH",
                 "NO_SUCH_VARIABLE_ANYWHERE"):
        reply = await say(telegram, f"/addmodel x url={evil.base_url} model=m key_env={name}")
        replies[name] = reply.replace(name, "NAME")
    # One answer for all: it does not tell which variables exist on the server.
    assert len(set(replies.values())) == 1, replies
    assert replies["PATH"] == (
        "⚠️ key_env: NAME is not a key models may use (allowed: ALPHA_KEY, GAMMA_KEY; the "
        "operator declares them in the catalogue's api_keys:); nothing added")
    # Another model's key, to a host it was not granted for.
    reply = await say(telegram, f"/addmodel x url={evil.base_url} model=m key_env=ALPHA_KEY")
    assert reply.startswith("⚠️ key_env: ALPHA_KEY may only be sent to 127.0.0.1:")
    assert reply.endswith(f"not to 127.0.0.1:{evil.base_url.split(':')[2].split('/')[0]}; "
                          "nothing added")
    # A granted key with one replica elsewhere is refused as a whole.
    reply = await say(telegram, f"/addmodel x url={evil.base_url} url={evil.base_url}x "
                                "model=m key_env=GAMMA_KEY")
    assert reply.startswith("⚠️ key_env: GAMMA_KEY may only be sent to")
    # Credentials in a URL are refused too (they would be stored and shown).
    reply = await say(telegram, "/addmodel x url=http://u:p@127.0.0.1:9/v1 model=m")
    assert reply.startswith("⚠️ url= must not carry credentials")
    assert evil.requests == []  # not even a probe reached the attacker
    assert await rows(db, "SELECT * FROM model_override") == []
    assert await rows(db, "SELECT * FROM audit_log") == []


async def test_a_granted_key_reaches_only_its_hosts_on_every_path(keyed_bot, telegram, gamma,
                                                                  models):
    port = gamma.base_url.split(":")[2].split("/")[0]
    second = f"http://localhost:{port}/v1"
    reply = await say(telegram, f"/addmodel g url={gamma.base_url} url={second} "
                                "model=gamma-served key_env=GAMMA_KEY")
    assert reply.startswith("✅ g (g) added: 2 replica(s)"), reply
    menu_reply = await say(telegram, "/models")  # routed: health checks run from now on
    assert "• g — g [enabled]" in menu_reply
    telegram.user_sends("/model", chat_id=ADMIN)
    menu = (await telegram.wait_for_bot_messages(ADMIN, 3))[-1]
    data = next(b["callback_data"] for r in menu.reply_markup["inline_keyboard"] for b in r
                if b["text"] == "g")
    query = telegram.user_presses(ADMIN, menu.message_id, data)
    await telegram.wait_for(lambda: query in telegram.callback_answers())
    assert (await say(telegram, "hello g")) == "[gamma-served] hello g"
    paths = {r.path for r in gamma.requests if r.headers.get("authorization")}
    # The probe and the health checks (/v1/models), and the chat request, all carried it.
    assert {"/v1/models", "/v1/chat/completions"} <= paths
    for request in gamma.requests:
        assert request.headers.get("authorization") in (None, f"Bearer {GAMMA_KEY}")
    # The catalogue's own key never went to gamma, nor gamma's to the catalogue's server.
    assert all(r.headers.get("authorization") != f"Bearer {GAMMA_KEY}" for r in models.requests)


async def test_a_stored_model_with_a_forbidden_key_is_never_loaded(keyed_bot, telegram, evil, db):
    """Defence in depth: a row written around the bot (or before the grant was withdrawn)."""
    spec = {"title": "Evil", "backend": "openai", "base_url": evil.base_url, "model": "m",
            "api_key_env": "BOT_TOKEN"}
    await db.execute(sa.text("INSERT INTO model_override (model_id, spec, enabled, removed) "
                             "VALUES ('evil', CAST(:spec AS JSON), true, false)"),
                     {"spec": json.dumps(spec)})
    await db.commit()
    # Any change makes every process reload the stored models: the bad row is skipped.
    assert (await say(telegram, "/disable beta")).startswith("✅ Beta (beta) disabled")
    telegram.user_sends("/model", chat_id=ADMIN)
    menu = (await telegram.wait_for_bot_messages(ADMIN, 2))[-1]
    assert "Evil" not in json.dumps(menu.reply_markup) and "Alpha" in json.dumps(menu.reply_markup)
    assert "evil" not in await say(telegram, "/models")
    assert evil.requests == []


@pytest.mark.parametrize("command", ["/export dpo", "/models", "/addmodel x url=http://h/v1 "
                                     "model=m", "/rmmodel beta", "/disable beta"])
async def test_admin_commands_do_not_exist_in_groups(keyed_bot, telegram, db, command):
    """An admin's command in a group gets what any unknown command gets; nothing private is
    posted there (no dump, no endpoints), nothing changes."""
    me = "@" + telegram.world.bot_user["username"]
    name, _, rest = command.partition(" ")
    telegram.user_sends(command, chat_id=GROUP, chat_type="supergroup", user_id=ADMIN)
    addressed = f"{name}{me} {rest}".strip()
    for text in (addressed, f"/nosuchcommand{me}"):
        before = len(telegram.bot_messages(GROUP))
        telegram.user_sends(text, chat_id=GROUP, chat_type="supergroup", user_id=ADMIN)
        await telegram.wait_for_bot_messages(GROUP, before + 1)
    answers = [m.text for m in telegram.bot_messages(GROUP)]
    assert answers[-2:] == ["I don't know that command. See /help."] * 2, answers
    assert telegram.calls("sendDocument") == []
    assert not any("127.0.0.1" in (m.text or "") for m in telegram.bot_messages(GROUP))
    assert await rows(db, "SELECT * FROM audit_log") == []
    assert await rows(db, "SELECT * FROM model_override") == []


async def test_a_vllm_models_key_goes_to_its_api_not_to_health_or_metrics(
    monkeypatch, tmp_path, telegram, models, database_url, redis_prefix
):
    """A routed vLLM entry: the key rides on /v1 requests (health listing, chat) only; /health
    and /metrics, which vLLM serves without authentication, never get it."""
    overrides = {"beta": {"backend": "vllm", "api_key_env": "ALPHA_KEY"}}
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix,
                           catalogue_overrides=overrides, ADMIN_IDS=str(ADMIN)):
        telegram.user_sends("/model", chat_id=ADMIN)
        [menu] = await telegram.wait_for_bot_messages(ADMIN, 1)
        data = next(b["callback_data"] for r in menu.reply_markup["inline_keyboard"] for b in r
                    if b["text"].endswith("Beta"))
        query = telegram.user_presses(ADMIN, menu.message_id, data)
        await telegram.wait_for(lambda: query in telegram.callback_answers())
        assert (await say(telegram, "hi beta")) == "[beta-served] hi beta"
        await telegram.wait_for(lambda: any(r.path == "/metrics" for r in models.requests))
    by_path: dict[str, set] = {}
    for request in models.requests:
        by_path.setdefault(request.path, set()).add(request.headers.get("authorization"))
    assert by_path["/v1/models"] == {"Bearer sk-test-alpha"}
    assert by_path["/v1/chat/completions"] == {"Bearer sk-test-alpha"}
    assert by_path["/metrics"] == {None} and by_path["/health"] == {None}
