"""Small helpers for end-to-end tests: buttons, database rows."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa


def button(message, prefix: str) -> str:
    """callback_data of the button on `message` whose text starts with `prefix`."""
    for row in (message.reply_markup or {}).get("inline_keyboard", []):
        for item in row:
            if item["text"].startswith(prefix):
                return item["callback_data"]
    raise AssertionError(f"no button {prefix!r} on {message.reply_markup}")


def labels(message) -> list[str]:
    return [b["text"] for row in (message.reply_markup or {}).get("inline_keyboard", [])
            for b in row]


async def rows(db, query: str, count: int | None = None, **params):
    """Rows of `query`; with `count`, waits until the bot has committed that many."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while True:
        await db.rollback()  # see what the bot committed since the last look
        found = (await db.execute(sa.text(query), params)).mappings().all()
        if count is None or len(found) >= count or loop.time() > deadline:
            return found
        await asyncio.sleep(0.05)


async def toast(telegram, query_id: str) -> str:
    """The text of the answer to a button press (waits for it)."""
    await telegram.wait_for(lambda: query_id in telegram.callback_answers())
    return telegram.callback_answers()[query_id].get("text", "")
