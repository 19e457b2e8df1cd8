"""Photos and voice notes through `chatmux run`: what the model server receives, what the user
sees, what Postgres keeps (file ids and metadata, never bytes)."""

from __future__ import annotations

import base64
import io
import json

import pytest
from PIL import Image

from tests.e2e.helpers import button, labels, rows, toast
from tests.harness import running_bot

PRIVATE = 7001
WHISPER = {"id": "whisper", "title": "Whisper", "model": "whisper-served",
           "transcription": True}


def picture(width: int, height: int, fmt: str = "PNG", color: str = "red") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, fmt)
    return out.getvalue()


def decoded(url: str) -> Image.Image:
    prefix = "data:image/jpeg;base64,"
    assert url.startswith(prefix)
    image = Image.open(io.BytesIO(base64.b64decode(url[len(prefix):])))
    assert image.format == "JPEG"
    return image


def image_urls(content) -> list[str]:
    assert isinstance(content, list), content
    return [p["image_url"]["url"] for p in content if p["type"] == "image_url"]


@pytest.fixture
async def vision_bot(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix):
    """Alpha (text only, the default) and Beta, which sees images."""
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix,
                           catalogue_overrides={"beta": {"vision": True}}) as settings:
        yield settings


@pytest.fixture
async def voice_bot(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix):
    models.audio_models = {"whisper-served"}
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix,
                           catalogue_extra=[WHISPER]) as settings:
        yield settings


async def use_beta(telegram):
    telegram.user_sends("/model", chat_id=PRIVATE)
    [menu] = await telegram.wait_for_bot_messages(PRIVATE, 1)
    await toast(telegram, telegram.user_presses(PRIVATE, menu.message_id, button(menu, "Beta")))


async def test_a_photo_goes_to_a_vision_model_as_an_image_part_and_is_replayed(
    vision_bot, telegram, models, db
):
    await use_beta(telegram)
    sent = telegram.user_sends_photo(picture(3000, 1500), chat_id=PRIVATE,
                                     caption="What is this?")
    await telegram.wait_for(lambda: len(models.chat_requests()) == 1)
    [request] = models.chat_requests()
    assert request["model"] == "beta-served"
    question = request["messages"][-1]
    assert question["role"] == "user"
    assert question["content"][0] == {"type": "text", "text": "What is this?"}
    [url] = image_urls(question["content"])
    assert decoded(url).size == (2048, 1024)  # Telegram's 2560 px copy, shrunk to 2048

    [user_row] = await rows(db, "SELECT * FROM message WHERE role = 'user'", 1)
    largest = sent["message"]["photo"][-1]
    assert user_row["content"] == "What is this?"
    assert user_row["attachments"] == [{
        "kind": "image", "file_id": largest["file_id"],
        "file_unique_id": largest["file_unique_id"], "width": 2560, "height": 1280,
        "mime_type": "image/jpeg", "file_size": largest["file_size"]}]
    assert "base64" not in json.dumps(user_row["attachments"])
    await rows(db, "SELECT * FROM message WHERE role = 'assistant'", 1)
    await telegram.wait_for_bot_messages(PRIVATE, 2)

    # The next question's history sends the image again.
    telegram.user_sends("And its colour?", chat_id=PRIVATE)
    await telegram.wait_for(lambda: len(models.chat_requests()) == 2)
    history = models.chat_requests()[1]["messages"]
    assert [m["role"] for m in history] == ["user", "assistant", "user"]
    assert image_urls(history[0]["content"]) == [url]
    assert history[2]["content"] == "And its colour?"


async def test_an_album_is_one_question_with_all_its_images(vision_bot, telegram, models, db):
    await use_beta(telegram)
    first = telegram.user_sends_photo(picture(400, 300), chat_id=PRIVATE, media_group_id="77")
    second = telegram.user_sends_photo(picture(300, 400, color="blue"), chat_id=PRIVATE,
                                       media_group_id="77", caption="Compare these")
    await telegram.wait_for(lambda: models.chat_requests(), timeout=10)
    await telegram.wait_for_bot_messages(PRIVATE, 2)
    [request] = models.chat_requests()
    content = request["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "Compare these"}
    assert [decoded(u).size for u in image_urls(content)] == [(400, 300), (300, 400)]
    [user_row] = await rows(db, "SELECT * FROM message WHERE role = 'user'", 1)
    assert [a["file_id"] for a in user_row["attachments"]] == [
        first["message"]["photo"][-1]["file_id"], second["message"]["photo"][-1]["file_id"]]
    deliveries = await rows(db, "SELECT tg_message_id FROM message_delivery "
                            "WHERE message_id = :id ORDER BY part", id=user_row["id"])
    assert [d["tg_message_id"] for d in deliveries] == [
        first["message"]["message_id"], second["message"]["message_id"]]


async def test_a_text_only_model_offers_the_vision_models_then_answers_after_the_switch(
    vision_bot, telegram, models, db
):
    telegram.user_sends_photo(picture(640, 480, "JPEG"), chat_id=PRIVATE, caption="What breed?")
    [offer] = await telegram.wait_for_bot_messages(PRIVATE, 1)
    assert offer.text.startswith("Alpha can't see images") and "Beta" in offer.text
    assert labels(offer) == ["Switch to Beta"]
    assert models.chat_requests() == []
    [question] = await rows(db, "SELECT * FROM message WHERE role = 'user'", 1)
    assert question["content"] == "What breed?" and question["attachments"][0]["kind"] == "image"

    answered = await toast(telegram, telegram.user_presses(PRIVATE, offer.message_id,
                                                           button(offer, "Switch")))
    assert "Beta" in answered
    await telegram.wait_for(lambda: models.chat_requests())
    [request] = models.chat_requests()
    assert request["model"] == "beta-served"
    assert len(image_urls(request["messages"][-1]["content"])) == 1
    [user] = await rows(db, "SELECT model_id FROM user_account")
    assert user["model_id"] == "beta"
    await rows(db, "SELECT * FROM message WHERE role = 'assistant'", 1)

    # Back on the text-only model, the photo is an "[image]" marker in the history.
    telegram.user_sends("/model", chat_id=PRIVATE)
    menu = await telegram.wait_for(lambda: next(
        (m for m in telegram.bot_messages(PRIVATE) if "Alpha" in labels(m)), None))
    await toast(telegram, telegram.user_presses(PRIVATE, menu.message_id, button(menu, "Alpha")))
    telegram.user_sends("Is it friendly?", chat_id=PRIVATE)
    await telegram.wait_for(lambda: len(models.chat_requests()) == 2)
    history = models.chat_requests()[1]["messages"]
    assert history[1] == {"role": "user", "content": "[image]\nWhat breed?"}
    assert history[-1] == {"role": "user", "content": "Is it friendly?"}


async def test_without_any_vision_model_a_photo_gets_one_line(bot, telegram, models, db):
    telegram.user_sends_photo(picture(100, 100), chat_id=PRIVATE)
    [reply] = await telegram.wait_for_bot_messages(PRIVATE, 1)
    assert "no model here can" in reply.text and not reply.reply_markup
    assert models.chat_requests() == [] and telegram.calls("getFile") == []
    [question] = await rows(db, "SELECT * FROM message WHERE role = 'user'", 1)
    assert question["attachments"][0]["kind"] == "image"  # kept, nothing lost


async def test_images_we_do_not_take_get_one_line_each(vision_bot, telegram, models, db):
    await use_beta(telegram)
    telegram.user_sends_document(b"\0" * (21 * 1024 * 1024), chat_id=PRIVATE,
                                 file_name="huge.png", mime_type="image/png")
    telegram.user_sends_document(b"heic", chat_id=PRIVATE, file_name="a.heic",
                                 mime_type="image/heic")
    telegram.user_sends_document(b"not a png at all", chat_id=PRIVATE, file_name="b.png",
                                 mime_type="image/png")
    replies = await telegram.wait_for_bot_messages(PRIVATE, 4)
    texts = sorted(m.text for m in replies[1:])
    assert texts == sorted([
        "⚠️ This file is too big for me: I read files up to 10 MB.",
        "⚠️ I can read images in JPEG, PNG, WebP or GIF only — please send it as a photo.",
        "⚠️ I couldn't read this image. Please send it again as a photo.",
    ])
    assert models.chat_requests() == []
    assert len(telegram.calls("getFile")) == 1  # only the small PNG was fetched
    # An image file that is a real PNG (with transparency) is read, as JPEG.
    rgba = io.BytesIO()
    Image.new("RGBA", (50, 40), (0, 0, 0, 0)).save(rgba, "PNG")
    telegram.user_sends_document(rgba.getvalue(), chat_id=PRIVATE, file_name="c.png",
                                 mime_type="image/png", caption="Transparent?")
    await telegram.wait_for(lambda: models.chat_requests())
    [url] = image_urls(models.chat_requests()[0]["messages"][-1]["content"])
    image = decoded(url)
    assert image.size == (50, 40) and image.getpixel((0, 0)) == (255, 255, 255)
    stored = await rows(db, "SELECT attachments FROM message WHERE role = 'user' "
                        "ORDER BY id", 2)
    assert stored[-1]["attachments"][0]["mime_type"] == "image/png"


async def test_a_voice_note_is_transcribed_shown_and_answered_like_text(
    voice_bot, telegram, models, db
):
    audio = b"OggS fake opus bytes"
    models.set_transcript(audio, "What is the capital of France?")
    sent = telegram.user_sends_voice(audio, chat_id=PRIVATE, duration=4)
    shown = await telegram.wait_for_bot_messages(PRIVATE, 2)
    assert shown[0].text == "🎙 What is the capital of France?"
    assert shown[0].entities == [{"type": "italic", "offset": 3, "length": 30}]
    assert shown[1].text == "[alpha-served] What is the capital of France?"

    [call] = models.transcription_requests
    assert call.model == "whisper-served" and call.audio == audio
    assert call.filename == "voice.ogg" and call.content_type == "audio/ogg"
    assert call.headers["authorization"] == "Bearer sk-test-alpha"
    [request] = models.chat_requests()
    assert request["messages"][-1] == {"role": "user",
                                       "content": "What is the capital of France?"}
    [question] = await rows(db, "SELECT * FROM message WHERE role = 'user'", 1)
    voice = sent["message"]["voice"]
    assert question["content"] == "What is the capital of France?"
    assert question["attachments"] == [{
        "kind": "voice", "file_id": voice["file_id"], "file_unique_id": voice["file_unique_id"],
        "duration": 4, "mime_type": "audio/ogg", "file_size": len(audio)}]

    # A video note too; the transcription model is no chat model.
    models.set_transcript(b"mp4 bytes", "Thanks!")
    telegram.user_sends_video_note(b"mp4 bytes", chat_id=PRIVATE, duration=3)
    await telegram.wait_for_bot_messages(PRIVATE, 4)
    assert models.transcription_requests[1].filename == "video_note.mp4"
    assert models.transcription_requests[1].content_type == "video/mp4"
    telegram.user_sends("/model", chat_id=PRIVATE)
    menus = await telegram.wait_for_bot_messages(PRIVATE, 5)
    assert labels(menus[-1]) == ["✓ Alpha", "Beta"]


async def test_voice_notes_we_cannot_take_get_one_line(voice_bot, telegram, models, db):
    telegram.user_sends_voice(b"long", chat_id=PRIVATE, duration=600)
    telegram.user_sends_voice(b"silence", chat_id=PRIVATE, duration=2)  # no words in it
    replies = await telegram.wait_for_bot_messages(PRIVATE, 2)
    assert sorted(m.text for m in replies) == sorted([
        "⚠️ Voice messages can be up to 5 minutes long — please send a shorter one or type "
        "your question.",
        "I couldn't make out any words in this voice message. Please try again or type your "
        "question.",
    ])
    assert len(models.transcription_requests) == 1 and models.chat_requests() == []
    # The empty one is stored, but the conversation does not go on from it.
    [question] = await rows(db, "SELECT * FROM message WHERE role = 'user'", 1)
    [conversation] = await rows(db, "SELECT head_message_id FROM conversation")
    assert question["content"] == "" and conversation["head_message_id"] is None


async def test_without_a_transcription_model_a_voice_note_gets_one_line(bot, telegram, models):
    telegram.user_sends_voice(b"hello", chat_id=PRIVATE, duration=3)
    [reply] = await telegram.wait_for_bot_messages(PRIVATE, 1)
    assert reply.text == ("I can't listen to voice messages here — please type your "
                          "question.")
    assert telegram.calls("getFile") == [] and models.transcription_requests == []
