"""Keeping secrets out of logs and messages: one URL redactor, one logging filter.

`redact_url` is what every log line and admin report that shows an endpoint goes through.
`RedactingFilter`, installed on the process's log handlers, is the net under everything else
(third-party request logs, exception texts): it masks credentials in any URL, secret-looking
query parameters, and the exact values of the secrets the process holds.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
# Query parameters whose values are credentials (matched case-insensitively, by substring).
_SECRET_PARAMS = ("key", "token", "secret", "password", "passwd", "pwd", "sig", "auth",
                  "credential", "session")
# A URL in free text: scheme://… up to whitespace or a quote/bracket.
_URL_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>\])]+")
# Telegram's bot-token path segment (/bot123:ABC/…) in case a URL of the Bot API is logged.
_BOT_TOKEN_PATH = re.compile(r"/bot\d+:[A-Za-z0-9_-]+")
# Secrets shorter than this are not masked by value (they would mask ordinary words).
MIN_SECRET_LENGTH = 6


def _secret_param(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_PARAMS)


def redact_url(url: str) -> str:
    """`url` without a password or token: user info becomes ***, secret query values too.

    `http://user:pass@host:8000/v1?key=abc&x=1` → `http://***@host:8000/v1?key=***&x=1`.
    Text that does not parse as a URL is returned with its user info cut out anyway.
    """
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
    except ValueError:
        return re.sub(r"//[^/@\s]*@", f"//{MASK}@", url)
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_secret_param(name) for name, _ in pairs):
            query = urlencode([(n, MASK if _secret_param(n) else v) for n, v in pairs],
                              safe="*")
    path = _BOT_TOKEN_PATH.sub(f"/bot{MASK}", parts.path)
    return urlunsplit((parts.scheme, netloc, path, query, parts.fragment))


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Every URL in `text` redacted, and every occurrence of each of `secrets` masked."""
    text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group()), text)
    text = _BOT_TOKEN_PATH.sub(f"/bot{MASK}", text)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class RedactingFilter(logging.Filter):
    """A handler filter: the record's final text (message and traceback) is redacted.

    Installed on handlers rather than loggers so that records from every library pass it.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._formatter = logging.Formatter()
        self.secrets: list[str] = []
        self.add_secrets(secrets)

    def add_secrets(self, secrets: Iterable[str]) -> None:
        found = {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}
        # Longest first, so a secret containing another is masked whole.
        self.secrets = sorted(set(self.secrets) | found, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: keep what can be shown safely
            message = str(record.msg)
        record.msg, record.args = redact_text(message, self.secrets), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text, self.secrets)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info, self.secrets)
        return True


def install_redaction(secrets: Iterable[str] = (),
                      logger: logging.Logger | None = None) -> RedactingFilter:
    """Put one `RedactingFilter` on every handler of `logger` (the root logger by default)."""
    logger = logger or logging.getLogger()
    found = next((f for h in logger.handlers for f in h.filters
                  if isinstance(f, RedactingFilter)), None)
    redactor = found or RedactingFilter()
    redactor.add_secrets(secrets)
    for handler in logger.handlers:
        if redactor not in handler.filters:
            handler.addFilter(redactor)
    return redactor
