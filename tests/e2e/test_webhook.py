"""Webhook mode: two replicas of the bot behind one webhook URL, sharing Redis and Postgres.

The fake Telegram delivers updates by POST with the secret token header, like Telegram, and
acts as the load balancer: round robin over the replicas, or a chosen replica per update
(two for a duplicated delivery). Telegram redelivers on any non-2xx answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest

from bot import queueing
from tests.e2e.helpers import button, labels, rows, toast
from tests.harness import running_bot

SECRET = "s3cr3t-Token_for-tests"
PRIVATE = 5151
ADMIN = 777


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    """Queued notes after 0.3 s (held answers end within the 3 s first-token timeout)."""
    monkeypatch.setattr(queueing, "QUICK_WAIT", 0.3)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Replica:
    url: str  # where this replica takes deliveries
    stack: contextlib.AsyncExitStack

    stopping: asyncio.Task[None] | None = None

    async def stop(self) -> None:
        """SIGTERM-like: the orderly shutdown `chatmux run` does when stopped (once: a second
        call waits for the first)."""
        if self.stopping is None:
            self.stopping = asyncio.ensure_future(self.stack.aclose())
        await asyncio.shield(self.stopping)


@dataclass
class Replicas:
    a: Replica
    b: Replica
    public_url: str  # what both registered with setWebhook


async def start_replica(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix,
                        name: str, public_url: str, **env: str) -> Replica:
    port = free_port()
    directory = tmp_path / name
    directory.mkdir()
    stack = contextlib.AsyncExitStack()
    await stack.enter_async_context(running_bot(
        monkeypatch, directory, telegram, models, database_url, redis_prefix,
        WEBHOOK_URL=public_url, WEBHOOK_LISTEN=f"127.0.0.1:{port}", WEBHOOK_SECRET=SECRET,
        **env))
    return Replica(f"http://127.0.0.1:{port}/telegram", stack)


@pytest.fixture
async def replicas(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix
                   ) -> AsyncIterator[Replicas]:
    """Replicas A and B of one bot (same database, same Redis prefix), each on its own port;
    the fake delivers to them in turn unless a test routes an update."""
    public_url = f"http://localhost:{free_port()}/telegram"  # the "load balancer"
    env = {"ADMIN_IDS": str(ADMIN), "SHUTDOWN_GRACE": "40"}
    a = await start_replica(monkeypatch, tmp_path, telegram, models, database_url,
                            redis_prefix, "a", public_url, **env)
    try:
        b = await start_replica(monkeypatch, tmp_path, telegram, models, database_url,
                                redis_prefix, "b", public_url, **env)
        try:
            telegram.webhook.balance([a.url, b.url])
            yield Replicas(a, b, public_url)
        finally:
            await b.stop()
    finally:
        await a.stop()


def delivered_to(telegram, update: dict) -> list[str]:
    """The replicas that took (2xx) an update."""
    return [d.url for d in telegram.webhook.deliveries
            if d.update_id == update["update_id"] and d.status == 200]


async def test_both_replicas_set_the_webhook_and_polling_is_refused(replicas, telegram):
    calls = telegram.calls("setWebhook")
    assert len(calls) == 2
    for call in calls:
        assert call["url"] == replicas.public_url and call["secret_token"] == SECRET
        assert "message" in call["allowed_updates"]
        assert "stopped_message_generation" in call["allowed_updates"]
    assert not telegram.calls("getUpdates")
    async with aiohttp.ClientSession() as session:
        url = f"{telegram.base_url}/bot{telegram.token}/getUpdates"
        async with session.post(url, json={}) as response:
            body = await response.json()
    assert response.status == 409
    assert body["description"].startswith("Conflict: can't use getUpdates method while "
                                          "webhook is active")
    # The orchestrator's probes and Prometheus are served on each replica's webhook port.
    async with aiohttp.ClientSession() as session:
        for replica in (replicas.a, replicas.b):
            base = replica.url.removesuffix("/telegram")
            async with session.get(f"{base}/healthz") as response:
                assert response.status == 200
            async with session.get(f"{base}/readyz") as response:
                assert response.status == 200
                assert (await response.json())["checks"] == {"database": "ok", "redis": "ok"}
            async with session.get(f"{base}/metrics") as response:
                assert response.status == 200 and "chatmux_" in await response.text()


async def test_a_wrong_or_missing_secret_is_refused_and_nothing_is_processed(
    replicas, telegram, models, db, caplog
):
    caplog.set_level(logging.WARNING, logger="bot.webhook")
    update = {"update_id": 999001, "message": {
        "message_id": 1, "date": 1, "chat": {"id": PRIVATE, "type": "private", "first_name": "M"},
        "from": {"id": PRIVATE, "is_bot": False, "first_name": "M"}, "text": "hello"}}
    async with aiohttp.ClientSession() as session:
        for headers in ({"X-Telegram-Bot-Api-Secret-Token": "not-the-secret"}, {}):
            async with session.post(replicas.a.url, json=update, headers=headers) as response:
                assert response.status == 401
    refused = [r.getMessage() for r in caplog.records if "refused a webhook" in r.getMessage()]
    assert len(refused) == 2
    assert "wrong secret token" in refused[0] and "no secret token" in refused[1]
    assert not any(SECRET in r.getMessage() or "not-the-secret" in r.getMessage()
                   for r in caplog.records)

    # Telegram itself with a stale secret: refused (401) and redelivered until it matches.
    telegram.webhook.secret_override = "an-old-secret"
    sent = telegram.user_sends("hi there", chat_id=PRIVATE)
    await telegram.wait_for(lambda: sum(d.update_id == sent["update_id"] and d.status == 401
                                        for d in telegram.webhook.deliveries) >= 2)
    info = telegram.webhook.info()
    assert info["last_error_message"] == "Wrong response from the webhook: 401 Unauthorized"
    assert info["pending_update_count"] == 1
    assert telegram.bot_messages(PRIVATE) == [] and models.chat_requests() == []
    assert await rows(db, "SELECT id FROM message") == []
    assert await rows(db, "SELECT id FROM user_account") == []

    telegram.webhook.secret_override = None  # the right secret: the update is taken at last
    [answer] = await telegram.wait_for_bot_messages(PRIVATE, 1)
    assert answer.text == "[alpha-served] hi there"


async def test_duplicated_deliveries_are_answered_once(replicas, telegram, models, db):
    sent = []
    for n in range(4):
        update = telegram.user_sends(f"question {n}", chat_id=PRIVATE + n)
        telegram.webhook.route(update["update_id"], replicas.a.url, replicas.b.url)
        sent.append(update)
    for n in range(4):
        await telegram.wait_for(
            lambda n=n: (m := telegram.bot_messages(PRIVATE + n)) and labels(m[-1]))
    for n, update in enumerate(sent):
        # Both replicas took each update (200), yet each question was answered once.
        assert sorted(delivered_to(telegram, update)) == sorted([replicas.a.url,
                                                                 replicas.b.url])
        assert [m.text for m in telegram.bot_messages(PRIVATE + n)] == [
            f"[alpha-served] question {n}"]
    assert len(models.chat_requests()) == 4
    assert len(await rows(db, "SELECT id FROM message WHERE role = 'user'")) == 4


async def test_a_stop_reaching_replica_a_stops_the_answer_streaming_on_b(
    replicas, telegram, models, db
):
    models.set_reply("alpha-served", " ".join(f"w{i}" for i in range(500)))
    models.tokens_per_chunk = 1
    models.chunk_delay = 0.02
    asked = telegram.user_sends("talk forever", chat_id=PRIVATE)
    telegram.webhook.route(asked["update_id"], replicas.b.url)
    await telegram.wait_for(lambda: len(telegram.drafts(PRIVATE)) >= 3)
    stop = telegram.user_stops_generation(PRIVATE, telegram.drafts(PRIVATE)[0].draft_id)
    telegram.webhook.route(stop["update_id"], replicas.a.url)
    [answer] = await telegram.wait_for_bot_messages(PRIVATE, 1, timeout=5)
    assert delivered_to(telegram, asked) == [replicas.b.url]
    assert delivered_to(telegram, stop) == [replicas.a.url]
    assert answer.text.startswith("w0 w1") and answer.text.endswith("⏹ Stopped.")
    assert "w499" not in answer.text
    await telegram.wait_for(lambda: models.cancelled_requests >= 1)
    [row] = await rows(db, "SELECT status FROM message WHERE role = 'assistant'", 1)
    assert row["status"] == "stopped"


async def test_an_edit_started_on_a_is_finished_on_b(replicas, telegram, models, db):
    asked = telegram.user_sends("capital of France?", chat_id=PRIVATE)
    telegram.webhook.route(asked["update_id"], replicas.a.url)
    [answer] = await telegram.wait_for(
        lambda: (m := telegram.bot_messages(PRIVATE)) and labels(m[0]) and m)
    query = telegram.user_presses(PRIVATE, answer.message_id, button(answer, "✏️"))
    telegram.webhook.route(telegram.pending_updates()[-1]["update_id"], replicas.a.url)
    await toast(telegram, query)
    prompt = (await telegram.wait_for_bot_messages(PRIVATE, 2))[-1]
    assert "improved answer" in prompt.text
    edit = telegram.user_sends("Paris.", chat_id=PRIVATE)
    telegram.webhook.route(edit["update_id"], replicas.b.url)
    [stored] = await rows(db, "SELECT * FROM answer_edit", 1)
    [edited] = await rows(db, "SELECT content FROM message WHERE id = :id",
                          id=stored["edited_id"])
    assert edited["content"] == "Paris."
    assert delivered_to(telegram, edit) == [replicas.b.url]
    assert len(models.chat_requests()) == 1  # "Paris." was not asked as a question


async def test_questions_sent_to_both_replicas_while_answering_are_answered_in_order(
    replicas, telegram, models
):
    models.hold()
    first = telegram.user_sends("first", chat_id=PRIVATE)
    telegram.webhook.route(first["update_id"], replicas.a.url)
    await telegram.wait_for(lambda: models.held == 1)
    second = telegram.user_sends("second", chat_id=PRIVATE)
    telegram.webhook.route(second["update_id"], replicas.b.url)
    third = telegram.user_sends("third", chat_id=PRIVATE)
    telegram.webhook.route(third["update_id"], replicas.a.url)
    await telegram.wait_for(
        lambda: len([m for m in telegram.bot_messages(PRIVATE) if m.text.startswith("⏳")]) == 2)
    assert len(models.chat_requests()) == 1  # one stream per chat across both replicas
    models.release()
    await telegram.wait_for(lambda: len(telegram.bot_messages(PRIVATE)) == 5)
    answers = [m.text for m in telegram.bot_messages(PRIVATE) if not m.text.startswith("⏳")]
    assert answers == ["[alpha-served] first", "[alpha-served] second", "[alpha-served] third"]
    asked = [[m["content"] for m in r["messages"]][-1] for r in models.chat_requests()]
    assert asked == ["first", "second", "third"]


async def say(telegram, text: str, chat_id: int, replica: Replica) -> str:
    before = len(telegram.bot_messages(chat_id))
    update = telegram.user_sends(text, chat_id=chat_id)
    telegram.webhook.route(update["update_id"], replica.url)
    return (await telegram.wait_for_bot_messages(chat_id, before + 1, timeout=15))[-1].text


async def test_model_choices_and_admin_changes_are_seen_by_both_replicas(
    replicas, telegram, models
):
    # A user's choice made through A answers through B.
    telegram.user_sends("/model", chat_id=PRIVATE)
    telegram.webhook.route(telegram.pending_updates()[-1]["update_id"], replicas.a.url)
    [menu] = await telegram.wait_for_bot_messages(PRIVATE, 1)
    beta = next(b["callback_data"] for r in menu.reply_markup["inline_keyboard"] for b in r
                if b["text"] == "Beta")
    query = telegram.user_presses(PRIVATE, menu.message_id, beta)
    telegram.webhook.route(telegram.pending_updates()[-1]["update_id"], replicas.a.url)
    await toast(telegram, query)
    assert await say(telegram, "which model?", PRIVATE, replicas.b) == (
        "[beta-served] which model?")

    # An admin disables beta through B: A moves the user back to the default at once.
    reply = await say(telegram, "/disable beta", ADMIN, replicas.b)
    assert reply.startswith("✅ Beta (beta) disabled")
    await telegram.wait_for(lambda: any("no longer available" in m.text
                                        for m in telegram.bot_messages(PRIVATE)))
    assert await say(telegram, "and now?", PRIVATE, replicas.a) == "[alpha-served] and now?"
    telegram.user_sends("/model", chat_id=PRIVATE)
    telegram.webhook.route(telegram.pending_updates()[-1]["update_id"], replicas.a.url)
    menu = await telegram.wait_for(
        lambda: (m := telegram.bot_messages(PRIVATE)) and m[-1].text.startswith("Current")
        and m[-1])
    assert labels(menu) == ["✓ Alpha"]


async def test_a_stopping_replica_takes_no_new_updates_and_finishes_its_answers(
    replicas, telegram, models, db
):
    words = " ".join(f"w{i}" for i in range(160))
    models.set_reply("alpha-served", words)
    models.tokens_per_chunk = 1
    # About 8 s of streaming: long enough for the refusal and the redelivery to B to happen
    # while A still answers on a loaded machine, well within the fixture's SHUTDOWN_GRACE.
    models.chunk_delay = 0.05
    asked = telegram.user_sends("long one", chat_id=PRIVATE)
    telegram.webhook.route(asked["update_id"], replicas.a.url)
    await telegram.wait_for(lambda: telegram.drafts(PRIVATE))
    stopping = asyncio.create_task(replicas.a.stop())

    async def refused() -> bool:
        """A delivery to A is not taken: the connection is refused or reset, or left
        unanswered (Telegram gives up on it and redelivers it, as the fake does)."""
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session, \
                    session.post(replicas.a.url) as r:
                await r.read()
        except (aiohttp.ClientConnectionError, TimeoutError):
            return True
        return False

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while not await refused():
        assert loop.time() < deadline, "replica A still takes requests while stopping"
        await asyncio.sleep(0.05)
    assert not stopping.done()  # still letting its answer finish
    # An update meant for A meanwhile: refused, so Telegram redelivers it (B takes it).
    later = telegram.user_sends("meanwhile", chat_id=PRIVATE + 1)
    telegram.webhook.route(later["update_id"], replicas.a.url)
    await telegram.wait_for(lambda: delivered_to(telegram, later) == [replicas.b.url],
                            timeout=10)
    assert not stopping.done()
    await asyncio.wait_for(stopping, 90)  # well above webhook_shutdown_bound: a hang fails
    # A's answer was finished and delivered before it stopped.
    [answer] = telegram.bot_messages(PRIVATE)
    assert answer.text == words
    [row] = await rows(db, "SELECT status FROM message WHERE role = 'assistant' "
                           "AND content = :words", 1, words=words)
    assert row["status"] == "complete"
    [other] = await telegram.wait_for_bot_messages(PRIVATE + 1, 1, timeout=10)
    assert other.text == words


async def test_chatmux_run_in_webhook_mode_finishes_its_answer_on_sigterm(
    tmp_path, telegram, models, database_url, redis_prefix
):
    """The installed command: SIGTERM stops taking deliveries, the answer being streamed is
    finished and delivered, the process exits 0 and never logs the secret."""
    from tests.e2e.processes import start_run
    from tests.harness import write_catalogue

    write_catalogue(tmp_path / "models.yaml", models)
    port = free_port()
    words = " ".join(f"w{i}" for i in range(60))
    models.set_reply("alpha-served", words)
    models.tokens_per_chunk = 1
    models.chunk_delay = 0.05  # about 3 s of streaming
    process = await start_run(
        tmp_path, telegram, database_url, redis_prefix,
        WEBHOOK_URL=f"http://127.0.0.1:{port}/telegram", WEBHOOK_LISTEN=f"127.0.0.1:{port}",
        WEBHOOK_SECRET=SECRET,
    )
    try:
        await telegram.wait_for(lambda: telegram.calls("setWebhook") or process.returncode,
                                timeout=30)
        telegram.user_sends("tell me", chat_id=2003)
        await telegram.wait_for(lambda: telegram.drafts(2003), timeout=15)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    log = stderr.decode()
    assert process.returncode == 0, log
    [answer] = telegram.bot_messages(2003)
    assert answer.text == words
    assert "Traceback" not in log
    assert "stopping: no new updates; letting answers finish" in log
    assert SECRET not in log and telegram.token not in log and "sk-test-alpha" not in log


async def test_a_replica_stopped_mid_answer_ends_it_as_interrupted_and_b_answers_the_queue(
    monkeypatch, tmp_path, telegram, models, database_url, redis_prefix, db
):
    from tests.e2e.test_shutdown import NOTE

    public_url = f"http://localhost:{free_port()}/telegram"
    a = await start_replica(monkeypatch, tmp_path, telegram, models, database_url,
                            redis_prefix, "a", public_url, SHUTDOWN_GRACE="0.5")
    b = await start_replica(monkeypatch, tmp_path, telegram, models, database_url,
                            redis_prefix, "b", public_url)
    try:
        models.set_reply("alpha-served", " ".join(f"w{i}" for i in range(2000)))
        models.tokens_per_chunk = 1
        models.chunk_delay = 0.02
        asked = telegram.user_sends("talk forever", chat_id=PRIVATE)
        telegram.webhook.route(asked["update_id"], a.url)
        await telegram.wait_for(lambda: len(telegram.drafts(PRIVATE)) >= 3)
        waiting = telegram.user_sends("and then?", chat_id=PRIVATE)
        telegram.webhook.route(waiting["update_id"], b.url)  # queued by B behind A's answer
        await telegram.wait_for(lambda: len(telegram.bot_messages(PRIVATE)) == 1)
        assert telegram.bot_messages(PRIVATE)[0].text.startswith("⏳ Queued")
        models.set_reply("alpha-served", lambda body: f"re: {body['messages'][-1]['content']}")
        await a.stop()
        # A's answer ended visibly; B, still running, answers the question that waited.
        answer = telegram.bot_messages(PRIVATE)[1]
        assert answer.text.startswith("w0 w1") and answer.text.endswith("\n\n" + NOTE)
        last = await telegram.wait_for(
            lambda: (m := telegram.bot_messages(PRIVATE)) and m[-1].text.startswith("re:")
            and m[-1], timeout=15)
        assert last.text == "re: and then?"
        statuses = [r["status"] for r in await rows(
            db, "SELECT status FROM message WHERE role = 'assistant' ORDER BY id", 2)]
        assert statuses == ["interrupted", "complete"]
    finally:
        await b.stop()
        await a.stop()
