"""What users see when a vLLM server refuses a question with one of its own (recorded) errors:
`chatmux run` with a catalogue entry on the fake in its vLLM flavour."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.e2e.helpers import labels, rows
from tests.fakes.openai_api import FakeModelServer
from tests.harness import running_bot

USER = 4242


@pytest.fixture
async def vllm_server() -> AsyncIterator[FakeModelServer]:
    """A vLLM server that serves a model under another name than the catalogue's alpha."""
    async with FakeModelServer({"renamed": 100}) as server:
        yield server


async def test_a_model_its_server_no_longer_serves_is_reported_as_such(
    monkeypatch, tmp_path, telegram, models, database_url, redis_prefix, vllm_server, db
):
    overrides = {"alpha": {"base_url": vllm_server.base_url}}  # still asks for "alpha-served"
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix,
                           catalogue_overrides=overrides):
        telegram.user_sends("hello", chat_id=USER)
        [reply] = await telegram.wait_for_bot_messages(USER, 1)
        assert reply.text == ("⚠️ Alpha is not served by its server right now. "
                              "Pick another model: /model")
        assert labels(reply) == ["🔄"]
        telegram.user_sends("привет", chat_id=USER + 1, language_code="ru")
        [reply] = await telegram.wait_for_bot_messages(USER + 1, 1)
        assert reply.text == ("⚠️ Alpha сейчас не обслуживается своим сервером. "
                              "Выберите другую модель: /model")
    statuses = await rows(db, "SELECT status, error_kind FROM message WHERE role = 'assistant'")
    assert {(s["status"], s["error_kind"]) for s in statuses} == {("error", "model_not_served")}


async def test_a_model_its_server_no_longer_serves_falls_back(
    monkeypatch, tmp_path, telegram, models, database_url, redis_prefix, vllm_server
):
    overrides = {"alpha": {"base_url": vllm_server.base_url, "fallback": ["beta"]}}
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix,
                           catalogue_overrides=overrides):
        telegram.user_sends("anyone home?", chat_id=USER)
        note, answer = await telegram.wait_for_bot_messages(USER, 2)
        assert note.text == "⚠️ Alpha is unavailable right now; Beta answers instead."
        assert answer.text == "[beta-served] anyone home?"


async def test_a_question_that_fills_the_servers_context_is_too_long(
    monkeypatch, tmp_path, telegram, models, database_url, redis_prefix, db
):
    """The catalogue thinks the context is larger than the server's. vLLM caps max_tokens to
    the room the prompt leaves; a prompt of exactly max_model_len leaves none."""
    async with FakeModelServer({"alpha-served": 100}) as server:
        overrides = {"alpha": {"base_url": server.base_url,
                               "params": {"temperature": 0.5, "max_tokens": 50}}}
        async with running_bot(monkeypatch, tmp_path, telegram, models, database_url,
                               redis_prefix, catalogue_overrides=overrides):
            # System "You are Alpha." (3 tokens + 4) and the question (89 + 4): 100.
            telegram.user_sends("w " * 89, chat_id=USER)
            [reply] = await telegram.wait_for_bot_messages(USER, 1)
            assert reply.text.startswith("⚠️ This is too long for Alpha"), reply.text
            [request] = server.chat_requests()
            assert request["max_tokens"] == 50
            telegram.user_sends("and now?", chat_id=USER)
            replies = await telegram.wait_for_bot_messages(USER, 2)
            assert replies[-1].text == "[alpha-served] and now?"
    statuses = await rows(db, "SELECT status, error_kind FROM message "
                              "WHERE role = 'assistant' ORDER BY id", 2)
    assert [(s["status"], s["error_kind"]) for s in statuses] == [
        ("error", "context_too_long"), ("complete", None)]
