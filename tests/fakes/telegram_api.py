"""Strict fake Telegram Bot API server for tests; the implementation is in ``tests.fakes.telegram``.

Drive a real aiogram ``Bot`` against it::

    fake = FakeTelegram()
    await fake.start()
    bot = Bot(fake.token, session=AiohttpSession(api=TelegramAPIServer.from_base(fake.base_url)))
"""

from tests.fakes.telegram import (
    ApiError,
    ChatMessage,
    DraftFrame,
    FakeTelegram,
    RecordedRequest,
    parse_html,
    parse_markdown,
    parse_markdown_v2,
    prepare_text,
    utf16_len,
    validate_entities,
)

__all__ = [
    "ApiError",
    "ChatMessage",
    "DraftFrame",
    "FakeTelegram",
    "RecordedRequest",
    "parse_html",
    "parse_markdown",
    "parse_markdown_v2",
    "prepare_text",
    "utf16_len",
    "validate_entities",
]
