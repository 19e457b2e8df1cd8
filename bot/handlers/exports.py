"""Admin `/export <format> [days] [jsonl]`: a preference dump sent as a document."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject
from aiogram.types import FSInputFile, Message

from bot.admin_args import whole_number
from bot.export_policy import policy_options
from bot.handlers.admin import IsAdmin
from bot.settings import Settings
from inference.catalogue import CatalogueError
from storage.exports.options import FORMATS, NEAR_DUPLICATE_THRESHOLD, ExportOptions

if TYPE_CHECKING:
    from storage.exports.runner import ExportResult

log = logging.getLogger(__name__)

USAGE = (
    "Usage: /export <dpo|kto|arena|sft> [days] [jsonl] [images] [near] — Parquet by default, "
    "gzipped JSONL with `jsonl`; `images` keeps rows with photos, as [image] markers; `near` "
    "drops rows whose prompt nearly repeats an earlier row's\n"
    "Example: /export dpo 30"
)
PROGRESS_EVERY = 3.0  # seconds between progress edits
_running = asyncio.Lock()  # one dump at a time per process: each holds a CPU core


def _parse(args: str | None) -> tuple[str, int | None, str, bool, bool]:
    words = (args or "").split()
    if not words or words[0] not in FORMATS or len(words) > 5:
        raise ValueError
    days: int | None = None
    suffix = "parquet"
    images = near = False
    for word in words[1:]:
        number = whole_number(word)
        if number is not None and days is None and 0 < number <= 36500:
            days = number
        elif word.lower() in ("jsonl", "json") and suffix == "parquet":
            suffix = "jsonl.gz"
        elif word.lower() == "images" and not images:
            images = True
        elif word.lower() == "near" and not near:
            near = True
        else:
            raise ValueError
    return words[0], days, suffix, images, near


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB" if n >= 1024 * 1024 else f"{n / 1024:.0f} KB"


def cli_hint(fmt: str, since: datetime | None, suffix: str, images: bool = False,
             near: bool = False) -> str:
    parts = ["chatmux", "export", "--format", fmt]
    if since is not None:
        parts += ["--since", since.strftime("%Y-%m-%d")]
    if images:
        parts += ["--include-images"]
    if near:
        parts += ["--near-duplicates"]
    parts += ["--out", f"{fmt}.{suffix}"]
    return shlex.join(parts)


async def export_command(message: Message, command: CommandObject, bot: Bot,
                         settings: Settings) -> None:
    try:
        fmt, days, suffix, images, near = _parse(command.args)
    except ValueError:
        await message.answer(f"⚠️ {USAGE}", parse_mode=None)
        return
    if _running.locked():
        await message.answer("⏳ another export is running; try again when it is sent",
                             parse_mode=None)
        return
    async with _running:
        since = datetime.now(UTC) - timedelta(days=days) if days else None
        try:  # the catalogue file as it is now: its models' export policies
            policy = await asyncio.to_thread(policy_options, settings)
        except CatalogueError as exc:
            log.warning("export: %s", exc)
            await message.answer("⚠️ the model catalogue cannot be read, so no model's export "
                                 "policy is known; the log has the details", parse_mode=None)
            return
        options = ExportOptions(format=fmt, since=since, include_images=images, **policy,
                                languages=settings.export_languages,
                                near_duplicates=NEAR_DUPLICATE_THRESHOLD if near else None,
                                **settings.export_salt_option())
        status = await message.answer(f"⏳ building the {fmt} dump…", parse_mode=None)
        with tempfile.TemporaryDirectory(prefix="chatmux-export-") as tmp:
            stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
            path = Path(tmp) / f"chatmux-{fmt}-{stamp}.{suffix}"
            result = await _build(status, settings.database_url, options, path)
            if result is None:
                return
            await _deliver(message, status, bot, settings, result, fmt, since, suffix, images,
                           near)


def _export_in_thread(*args: Any) -> ExportResult:
    """The runner, imported on the worker thread (pyarrow and numpy load with the first
    export, not with the bot)."""
    from storage.exports.runner import export_in_thread

    return export_in_thread(*args)


async def _build(status: Message, database_url: str, options: ExportOptions,
                 path: Path) -> ExportResult | None:
    progress: list[tuple[int, int]] = [(0, 0)]

    def record(done: int, total: int) -> None:  # called on the worker thread
        progress[0] = (done, total)

    work = asyncio.create_task(asyncio.to_thread(
        _export_in_thread, database_url, options, path, record))
    shown = (0, 0)
    while not work.done():
        await asyncio.wait({work}, timeout=PROGRESS_EVERY)
        done, total = progress[0]
        if not work.done() and total and (done, total) != shown:
            shown = (done, total)
            with contextlib.suppress(TelegramAPIError):
                await status.edit_text(
                    f"⏳ building the {options.format} dump… {done:,}/{total:,} judgements "
                    f"({100 * done // total}%)", parse_mode=None)
    try:
        return work.result()
    except Exception:
        log.exception("export %s failed", options.format)
        await _say(status, "⚠️ the export failed; the log has the details")
        return None


async def _deliver(message: Message, status: Message, bot: Bot, settings: Settings,
                   result: ExportResult, fmt: str, since: datetime | None,
                   suffix: str, images: bool = False, near: bool = False) -> None:
    left_out = removed_text(result.removed)
    if result.rows == 0:
        await _say(status, f"ℹ️ nothing to export: no {fmt} rows"
                   + (f" since {since:%Y-%m-%d}" if since else "") + left_out)
        return
    size = result.path.stat().st_size
    if size > settings.telegram_upload_limit:
        await _say(status, (
            f"⚠️ the dump is {_size(size)}, over the {_size(settings.telegram_upload_limit)} "
            "Telegram lets a bot upload. On the server run:\n"
            f"{cli_hint(fmt, since, suffix, images, near)}"))
        return
    caption = (f"{fmt}: {result.rows:,} rows from {result.judgements:,} judgements"
               + (f" since {since:%Y-%m-%d}" if since else "")
               + left_out)
    started = time.monotonic()
    try:
        await bot.send_document(message.chat.id, FSInputFile(result.path), caption=caption,
                                parse_mode=None, request_timeout=600)
    except TelegramAPIError as exc:
        log.warning("could not send the %s dump (%s): %s", fmt, _size(size), exc)
        await _say(status, "⚠️ Telegram did not take the file; on the server run:\n"
                   f"{cli_hint(fmt, since, suffix, images, near)}")
        return
    log.info("sent a %s dump: %d rows, %s in %.1fs", fmt, result.rows, _size(size),
             time.monotonic() - started)
    if result.card is not None:  # the dataset card: with the dump, an uploadable folder
        try:
            await bot.send_document(message.chat.id, FSInputFile(result.card),
                                    caption="dataset card (README.md) for the dump above",
                                    parse_mode=None)
        except TelegramAPIError as exc:
            log.warning("could not send the dataset card: %s", exc)
    with contextlib.suppress(TelegramAPIError):
        await status.delete()


# How each ExportResult.removed key reads in the reply (unknown keys by their name).
REMOVED = {
    "forgotten": "forgotten",
    "no_consent": "no consent",
    "restricted_model": "restricted models (the CLI's --include-restricted keeps them)",
    "images": "with images (add `images` to keep them)",
    "duplicate": "duplicates",
    "near_duplicate": "near-duplicate prompts",
}


def removed_text(removed: dict[str, int]) -> str:
    """`; left out: 2 no consent, 1 duplicates` or ""."""
    parts = [f"{n:,} {REMOVED.get(key, key.replace('_', ' '))}" for key, n in removed.items()]
    return "; left out: " + ", ".join(parts) if parts else ""


async def _say(status: Message, text: str) -> None:
    try:
        await status.edit_text(text, parse_mode=None)
    except TelegramAPIError:
        await status.answer(text, parse_mode=None)


def build_router() -> Router:
    router = Router(name="exports")
    router.message.filter(IsAdmin())
    router.message.register(export_command, Command("export"))
    return router
