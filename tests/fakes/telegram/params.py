"""Decoding Bot API request parameters (query string, JSON, urlencoded or multipart)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .errors import ApiError, bad_request

MAX_UPLOAD = 50 * 1024 * 1024
# Parameters that are strings even when they look like JSON ("123", "true", ...).
STRING_PARAMS = frozenset(
    {
        "text", "caption", "parse_mode", "callback_query_id", "action", "language_code",
        "url", "business_connection_id", "message_effect_id", "inline_message_id",
        "description", "short_description", "name", "secret_token", "emoji", "file_id",
    }
)  # fmt: skip


@dataclass
class Upload:
    """A file part of a multipart request."""

    filename: str
    content: bytes
    content_type: str


def decode_value(key: str, value: str) -> Any:
    """A form value: JSON (objects, lists, numbers, booleans) with a raw-string fallback."""
    if key in STRING_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


class Params:
    """Decoded parameters of one call, with typed accessors raising Telegram-like errors."""

    def __init__(
        self,
        data: dict[str, Any],
        uploads: dict[str, Upload] | None = None,
        request: web.Request | None = None,
    ) -> None:
        self.data, self.uploads, self.request = data, uploads or {}, request

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def int(self, key: str, *, missing: str | None = None) -> int | None:
        """An integer parameter; ``missing`` is the error reason if it is absent."""
        value = self.data.get(key)
        if value is None or value == "":
            if missing:
                raise bad_request(missing)
            return None
        if isinstance(value, str) and value.lstrip("-").isdigit():
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if key == "chat_id":
            raise bad_request("chat not found")
        raise bad_request(f'Field "{key}" must be of type Integer')

    def flag(self, key: str) -> bool:
        return self.data.get(key) in (True, "true", "True", 1, "1")

    def json(self, key: str) -> Any:
        """An object/array parameter (also accepts it JSON-encoded inside a JSON body)."""
        value = self.data.get(key)
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise bad_request(f"can't parse {key} JSON object") from None
        return value

    def describe(self) -> dict[str, Any]:
        """Parameters for the request log; uploads summarised."""
        result = dict(self.data)
        for key, upload in self.uploads.items():
            result[key] = {
                "filename": upload.filename,
                "size": len(upload.content),
                "content_type": upload.content_type,
            }
        return result


async def read_params(request: web.Request) -> Params:
    """Collect parameters from the query string and the body, whatever its encoding."""
    data: dict[str, Any] = {k: decode_value(k, v) for k, v in request.query.items()}
    uploads: dict[str, Upload] = {}
    if not request.body_exists:
        return Params(data, uploads, request)
    try:
        if request.content_type == "application/json":
            body = await request.json()
            if not isinstance(body, dict):
                raise bad_request("request body must be a JSON object")
            data.update(body)
        elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            for key, value in (await request.post()).items():
                if isinstance(value, web.FileField):
                    content = value.file.read()
                    uploads[key] = Upload(value.filename, content, value.content_type)
                else:
                    data[key] = decode_value(key, str(value))
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, "Request Entity Too Large") from None
    except ValueError:
        raise bad_request("can't parse request body") from None
    if any(len(u.content) > MAX_UPLOAD for u in uploads.values()):
        raise ApiError(413, "Request Entity Too Large")
    return Params(data, uploads, request)
