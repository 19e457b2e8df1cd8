"""UTF-16 measuring and link checks shared by the formatting parsers."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

_USER_LINK = re.compile(r"tg://user\?id=(\d{1,20})$", re.IGNORECASE)
_BARE_DOMAIN = re.compile(r"[\w-]+(\.[\w-]+)+(:\d+)?([/?#]\S*)?$")
LINK_SCHEMES = frozenset({"http", "https", "tg", "ton", "ftp"})


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units, the unit of Telegram limits and offsets."""
    return len(text.encode("utf-16-le")) // 2


def units(char: str) -> int:
    """UTF-16 code units of one character (2 outside the Basic Multilingual Plane)."""
    return 2 if ord(char) > 0xFFFF else 1


def byte_offset(text: str, index: int) -> int:
    """UTF-8 byte offset of character ``index`` (Telegram reports errors in bytes)."""
    return len(text[:index].encode("utf-8", "surrogatepass"))


def link_user_id(url: str) -> int | None:
    """The user id of a ``tg://user?id=N`` link, else None."""
    match = _USER_LINK.match(url.strip())
    return int(match.group(1)) if match else None


def check_link(url: str) -> str | None:
    """Return the normalised link if Telegram would accept ``url``, else None."""
    url = url.strip()
    if not url or any(c.isspace() for c in url):
        return None
    parts = urlsplit(url)
    if parts.scheme:
        scheme = parts.scheme.lower()
        if scheme not in LINK_SCHEMES:
            return None
        if scheme != "tg" and not parts.netloc:
            return None
        if scheme == "tg" and not (parts.netloc or parts.path):
            return None
        return url
    return f"http://{url}" if _BARE_DOMAIN.match(url) else None


def link_entity(url: str, text: str, entity: dict[str, Any]) -> bool:
    """Make ``entity`` a text_link or text_mention; False if the link is invalid."""
    if (user_id := link_user_id(url)) is not None:
        entity.update(
            type="text_mention", user={"id": user_id, "is_bot": False, "first_name": text}
        )
        return True
    checked = check_link(url)
    if checked is None:
        return False
    entity.update(type="text_link", url=checked)
    return True
