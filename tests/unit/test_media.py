"""Images made ready for models, their place in requests and context fitting, and the fakes'
file and transcription endpoints as strict as the real ones."""

from __future__ import annotations

import io

import aiohttp
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from PIL import Image

from bot.media import IMAGE_MARKER, MediaRefused, download, to_jpeg, user_content
from inference.context import fit_to_context
from inference.protocol import ChatMessage
from inference.tokens import IMAGE_TOKENS
from tests.fakes.openai_api import FakeModelServer


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def test_large_images_shrink_to_2048_and_a_gif_gives_its_first_frame():
    jpeg, width, height = to_jpeg(encoded(Image.new("RGB", (4096, 1024), "red"), "PNG"))
    assert (width, height) == (2048, 512) and Image.open(io.BytesIO(jpeg)).format == "JPEG"
    frames = [Image.new("RGB", (30, 20), c) for c in ("blue", "yellow")]
    gif = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:])
    jpeg, _, _ = to_jpeg(gif)
    r, _g, b = Image.open(io.BytesIO(jpeg)).convert("RGB").getpixel((5, 5))
    assert b > 200 and r < 60  # blue: the first frame
    with pytest.raises(MediaRefused) as refused:
        to_jpeg(encoded(Image.new("RGB", (10, 10)), "BMP"))
    assert refused.value.key == "image_unsupported"
    with pytest.raises(MediaRefused) as refused:
        to_jpeg(b"\x89PNG broken")
    assert refused.value.key == "image_unreadable"


def test_user_content_parts_for_vision_and_markers_for_text_only():
    images = [{"kind": "image", "file_id": "f1", "file_unique_id": "u1"},
              {"kind": "image", "file_id": "f2", "file_unique_id": "u2"}]
    assert user_content("Look", images, None) == f"{IMAGE_MARKER} {IMAGE_MARKER}\nLook"
    assert user_content("", images, None) == f"{IMAGE_MARKER} {IMAGE_MARKER}"
    parts = user_content("Look", images, {"u1": "data:image/jpeg;base64,AA"})
    assert parts == [{"type": "text", "text": f"{IMAGE_MARKER}\nLook"},
                     {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AA"}}]
    assert user_content("plain", None, {}) == "plain"


async def test_context_fitting_counts_each_image():
    image = {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + "A" * 9999}}
    old = ChatMessage("user", [{"type": "text", "text": "old"}, image])
    messages = [old, ChatMessage("assistant", "ok"), ChatMessage("user", "new")]
    fitted = await fit_to_context(messages, IMAGE_TOKENS + 100, 100)
    assert fitted.dropped == 2 and fitted.messages == messages[2:]
    fitted = await fit_to_context(messages, IMAGE_TOKENS + 400, 100)
    assert fitted.dropped == 0  # the data URL's characters are not counted as text


async def test_get_file_refuses_over_20_mb_and_downloads_need_a_file_path(telegram):
    huge = telegram.user_sends_document(b"\0" * (20 * 1024 * 1024 + 1), chat_id=1,
                                        file_name="a.png", mime_type="image/png")
    small = telegram.user_sends_document(b"small", chat_id=1, file_name="b.png",
                                         mime_type="image/png")
    session = AiohttpSession(api=TelegramAPIServer.from_base(telegram.base_url))
    bot = Bot(telegram.token, session=session)
    try:
        with pytest.raises(MediaRefused) as refused:
            await download(bot, huge["message"]["document"]["file_id"])
        assert refused.value.key == "media_too_big"
        assert telegram.requests[-1].error == "Bad Request: file is too big"
        assert await download(bot, small["message"]["document"]["file_id"]) == b"small"
        with pytest.raises(MediaRefused) as refused:
            await download(bot, "no-such-id")
        assert refused.value.key == "media_download_failed"
        async with aiohttp.ClientSession() as http:  # a path getFile never gave out
            url = f"{telegram.base_url}/file/bot{telegram.token}/documents/file_1.png"
            async with http.get(url) as response:
                assert response.status == 404
    finally:
        await session.close()


async def test_the_fake_transcription_endpoint_is_strict():
    async with FakeModelServer(["chat"], flavour="openai") as server:
        server.audio_models = {"whisper-1"}
        server.set_transcript(b"audio", "hello")
        url = f"{server.base_url}/audio/transcriptions"
        async with aiohttp.ClientSession() as http:
            def form(model: str, with_file: bool = True) -> aiohttp.FormData:
                data = aiohttp.FormData()
                data.add_field("model", model)
                if with_file:
                    data.add_field("file", b"audio", filename="v.ogg", content_type="audio/ogg")
                return data

            async with http.post(url, data=form("whisper-1")) as response:
                assert response.status == 200 and await response.json() == {"text": "hello"}
            async with http.post(url, data=form("whisper-1", with_file=False)) as response:
                assert response.status == 400
            async with http.post(url, data=form("chat")) as response:
                assert response.status == 404
