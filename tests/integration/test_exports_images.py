"""Exports and photos: rows whose dialog has an image are left out of the text formats (and
counted) unless asked for, then each image is an "[image]" marker."""

from __future__ import annotations

import json

import pytest

from storage.db import create_engine, create_sessionmaker
from storage.exports import ExportOptions, export
from storage.repositories.conversations import AnswerRecord, ConversationRepository
from storage.repositories.feedback import FeedbackRepository
from storage.repositories.users import TelegramUser

ANN = TelegramUser(5005, first_name="Ann", language_code="en")
IMAGE = {"kind": "image", "file_id": "AgAC1", "file_unique_id": "AQAD1", "width": 800,
         "height": 600, "mime_type": "image/jpeg", "file_size": 51234}


@pytest.fixture
async def sessionmaker(database_url):
    engine = create_engine(database_url)
    yield create_sessionmaker(engine)
    await engine.dispose()


async def liked_turn(conversations, feedback, text, tg_id, attachments=None, chat=5005):
    asked = await conversations.ask(ANN, (chat, "private", None), None, text, tg_id,
                                    attachments=attachments)
    answer = await conversations.add_answer(
        asked.question, AnswerRecord(f"answer to {text or 'a photo'}", "beta", "beta-served"))
    await feedback.toggle_vote(answer.id, asked.user.id, asked.chat_row_id, 1)


async def test_rows_with_images_are_left_out_unless_asked_for(sessionmaker, tmp_path):
    conversations, feedback = ConversationRepository(sessionmaker), FeedbackRepository(sessionmaker)
    await liked_turn(conversations, feedback, "What breed?", 1, [IMAGE, {**IMAGE, "file_id": "x"}])
    await conversations.close_active((await conversations.ask(
        ANN, (5005, "private", None), None, "bye", 2)).chat_row_id)
    await liked_turn(conversations, feedback, "Plain question", 3)

    out = tmp_path / "plain.jsonl"
    result = await export(sessionmaker, ExportOptions(format="sft", salt=b"s"), out)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert result.rows == 1 and result.image_rows_left_out == 1
    assert rows[0]["messages"][-2:] == [
        {"role": "user", "content": "Plain question"},
        {"role": "assistant", "content": "answer to Plain question"}]

    out = tmp_path / "images.jsonl"
    result = await export(sessionmaker, ExportOptions(format="sft", salt=b"s",
                                                      include_images=True), out)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert result.rows == 2 and result.image_rows_left_out == 0
    dialogs = [r["messages"] for r in rows]
    assert [{"role": "user", "content": "[image] [image]\nWhat breed?"},
            {"role": "assistant", "content": "answer to What breed?"}] in dialogs
    assert "AgAC1" not in out.read_text()  # file ids stay in the database
