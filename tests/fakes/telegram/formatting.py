"""Message text preparation: parse_mode / entities validation, trimming and limits."""

from __future__ import annotations

import re
from typing import Any

from .errors import bad_request, parse_error
from .html_mode import parse_html
from .markdown_mode import parse_markdown, parse_markdown_v2
from .textutil import check_link, utf16_len

ENTITY_TYPES = frozenset(
    {
        "mention", "hashtag", "cashtag", "bot_command", "url", "email", "phone_number", "bold",
        "italic", "underline", "strikethrough", "spoiler", "blockquote", "expandable_blockquote",
        "code", "pre", "text_link", "text_mention", "custom_emoji", "date_time",
    }
)  # fmt: skip
_REQUIRED_FIELD = {
    "text_link": "url",
    "text_mention": "user",
    "custom_emoji": "custom_emoji_id",
    "date_time": "unix_time",
}
_PARSERS = {"html": parse_html, "markdownv2": parse_markdown_v2, "markdown": parse_markdown}
# What Telegram's server (tdlib's clean_input_string) turns into spaces: C0 control characters.
# It also turns \t into a space and drops \r; those are left alone here.
_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")
MAX_TEXT = 4096
MAX_CAPTION = 1024

Entities = list[dict[str, Any]]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_entities(text: str, entities: Any) -> Entities:
    """Check explicit ``entities`` against ``text`` (offsets in UTF-16 code units)."""
    if not isinstance(entities, list):
        raise parse_error("entities must be an Array of MessageEntity")
    size = utf16_len(text)
    result: Entities = []
    for n, raw in enumerate(entities):
        if not isinstance(raw, dict):
            raise parse_error(f"entity {n} must be an Object")
        entity = {k: v for k, v in raw.items() if v is not None}
        kind, offset, length = entity.get("type"), entity.get("offset"), entity.get("length")
        if kind not in ENTITY_TYPES:
            raise parse_error(f'unsupported entity type "{kind}" in entity {n}')
        if not _is_int(offset) or offset < 0:
            raise parse_error(f"wrong offset {offset!r} of entity {n}")
        if not _is_int(length) or length <= 0:
            raise parse_error(f"wrong length {length!r} of entity {n}")
        if offset + length > size:
            raise parse_error(
                f"entity {n} ({kind} at {offset}+{length}) ends beyond the end of the text "
                f"({size} UTF-16 code units)"
            )
        needed = _REQUIRED_FIELD.get(kind)
        if needed and not entity.get(needed):
            raise parse_error(f'entity {n} of type "{kind}" must have field "{needed}"')
        url = entity.get("url")
        if kind == "text_link" and (not isinstance(url, str) or check_link(url) is None):
            raise parse_error(f"wrong HTTP URL {entity['url']!r} in entity {n}")
        if kind == "text_mention" and not _is_int((entity["user"] or {}).get("id")):
            raise parse_error(f"wrong user in entity {n}")
        result.append(entity)
    return sort_entities(result)


def sort_entities(entities: Entities) -> Entities:
    """Telegram's order: by offset, longer first."""
    return sorted(entities, key=lambda e: (e["offset"], -e["length"], e["type"]))


def trim(text: str, entities: Entities) -> tuple[str, Entities]:
    """Strip leading/trailing whitespace like Telegram, clipping entities to what remains."""
    stripped = text.strip()
    if stripped == text:
        return text, entities
    lead = utf16_len(text[: len(text) - len(text.lstrip())])
    size = utf16_len(stripped)
    result: Entities = []
    for entity in entities:
        start = max(entity["offset"] - lead, 0)
        end = min(entity["offset"] + entity["length"] - lead, size)
        if end > start:
            result.append({**entity, "offset": start, "length": end - start})
    return stripped, result


def prepare_text(
    text: Any,
    parse_mode: Any,
    entities: Any,
    *,
    limit: int = MAX_TEXT,
    too_long: str = "message is too long",
) -> tuple[str, Entities]:
    """Turn request text + parse_mode/entities into what Telegram stores, enforcing ``limit``.

    Explicit ``entities`` win over ``parse_mode`` (which is then ignored).
    """
    if text is None:
        text = ""
    if not isinstance(text, str):
        text = str(text)
    text = _CONTROLS.sub(" ", text)  # one for one, so entity offsets still hold
    if entities is not None:
        parsed = text, validate_entities(text, entities)
    elif parse_mode:
        parser = _PARSERS.get(str(parse_mode).lower())
        if parser is None:
            raise bad_request("unsupported parse_mode")
        parsed = parser(text)
    else:
        parsed = text, []
    result = trim(*parsed)
    if utf16_len(result[0]) > limit:
        raise bad_request(too_long)
    return result


def canonical(entities: Entities) -> list[tuple[tuple[str, str], ...]]:
    """Order-insensitive comparable form of an entity list."""
    return sorted(tuple(sorted((k, repr(v)) for k, v in e.items())) for e in entities)
