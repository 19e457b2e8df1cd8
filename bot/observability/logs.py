"""Structured logs: every record made while an update is handled carries its `update_id`,
`chat_id` and (once chosen) `model`, taken from context variables set by `enter_update` (an
outer update middleware, `bot.middlewares.observe`) and `set_model` (where a turn picks its
model).

The fields are put on records by a log record factory (`install_log_context`), so every
handler sees them, whichever library logs. `LOG_FORMAT=json` writes one JSON object a line
(`JsonFormatter`); `text` appends the fields that are set to the usual line. Either way the
text passes `inference.redaction.RedactingFilter` first (it is a handler filter: it runs
before the formatter and rewrites the message and traceback the formatter then uses).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import IO, Any

FIELDS = ("update_id", "chat_id", "model")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_update_id: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "chatmux_log_update_id", default=None)
_chat_id: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "chatmux_log_chat_id", default=None)
_model: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "chatmux_log_model", default=None)


def set_chat(chat_id: int) -> None:
    """The chat this task works for (a queued turn resumed outside any update)."""
    _chat_id.set(chat_id)


def set_model(model: str) -> None:
    """The model the current turn streams from; set for the rest of the task."""
    _model.set(model)


def current() -> dict[str, Any]:
    """The context fields that are set."""
    values = (_update_id.get(), _chat_id.get(), _model.get())
    return {k: v for k, v in zip(FIELDS, values, strict=True) if v is not None}


def enter_update(update_id: int, chat_id: int | None) -> None:
    """Start the context of an update (in its own task: the fields end with it)."""
    _update_id.set(update_id)
    _chat_id.set(chat_id)
    _model.set(None)


_VARS = {"update_id": _update_id, "chat_id": _chat_id, "model": _model}


@contextlib.contextmanager
def scoped(**fields: Any) -> Iterator[None]:
    """Set some of the fields (None: unset) for a block, then put back what they were: a
    queued question answered in another update's task is not logged as that update's."""
    tokens = [(_VARS[name], _VARS[name].set(value)) for name, value in fields.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


_installed: list[Callable[..., logging.LogRecord]] = []


def install_log_context() -> None:
    """Make every log record carry the context fields (attributes, None when unset).
    Idempotent; wraps whatever record factory is in place."""
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        record.update_id = _update_id.get()
        record.chat_id = _chat_id.get()
        record.model = _model.get()
        return record

    _installed.append(factory)
    logging.setLogRecordFactory(factory)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, the context fields that are set,
    and the (already redacted) traceback as `exc`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The usual line, with ` [update_id=… chat_id=… model=…]` for the fields that are set."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        fields = [f"{name}={value}" for name in FIELDS
                  if (value := getattr(record, name, None)) is not None]
        return f"{line} [{' '.join(fields)}]" if fields else line


def formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter()


def configure_logging(level: str, log_format: str = "text",
                      stream: IO[str] | None = None) -> None:
    """`logging.basicConfig` with the context fields and `log_format` (a no-op for the
    handlers if the root logger has some already, as basicConfig is). The caller installs
    redaction on the handlers (`install_redaction`)."""
    install_log_context()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(log_format))
    logging.basicConfig(level=level, handlers=[handler])
