"""Strict fake Telegram Bot API server for tests (see :class:`FakeTelegram`)."""

from .errors import ApiError
from .formatting import prepare_text, validate_entities
from .html_mode import parse_html
from .markdown_mode import parse_markdown, parse_markdown_v2
from .models import ChatMessage, DraftFrame, RecordedRequest
from .server import FakeTelegram
from .textutil import utf16_len

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
