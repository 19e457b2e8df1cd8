"""The fake's webhook methods and deliveries, driven through a real aiogram ``Bot``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest, TelegramConflictError
from aiohttp import web

from tests.fakes.telegram_api import FakeTelegram

pytestmark = pytest.mark.timeout(10)


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    server = FakeTelegram()
    server.webhook.retry_delay = 0.02
    await server.start()
    yield server
    await server.stop()
    assert not server.internal_errors


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    b = Bot(fake.token, session=AiohttpSession(api=TelegramAPIServer.from_base(fake.base_url)))
    yield b
    await b.session.close()


class Receiver:
    """A webhook endpoint answering with the statuses it is told, recording what came."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.got: list[tuple[int, str | None]] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        update = await request.json()
        self.got.append((update["update_id"], request.headers.get(
            "X-Telegram-Bot-Api-Secret-Token")))
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/hook"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


@pytest.mark.parametrize(
    ("url", "secret", "error"),
    [
        ("http://example.org/hook", None, "An HTTPS URL must be provided for webhook"),
        ("https://example.org:8080/hook", None, "Webhook can be set up only on ports 80, 88"),
        ("https:///hook", None, "Failed to resolve host"),
        ("https://example.org/hook", "has space", "secret token contains unallowed characters"),
        ("https://example.org/hook", "a:b", "secret token contains unallowed characters"),
        ("https://example.org/hook", "x" * 257, "secret token is too long"),
    ],
)
async def test_set_webhook_is_checked_like_telegram(fake, bot, url, secret, error):
    with pytest.raises(TelegramBadRequest, match=error):
        await bot.set_webhook(url, secret_token=secret)
    assert (await bot.get_webhook_info()).url == ""


async def test_webhook_info_and_polling_conflict(fake, bot):
    assert await bot.set_webhook("https://example.org/hook", secret_token="ok_-9",
                                 allowed_updates=["message"])
    info = await bot.get_webhook_info()
    assert info.url == "https://example.org/hook" and info.allowed_updates == ["message"]
    with pytest.raises(TelegramConflictError, match="can't use getUpdates method while "
                                                    "webhook is active"):
        await bot.get_updates()
    assert await bot.delete_webhook()
    assert (await bot.get_webhook_info()).url == ""
    assert await bot.get_updates(timeout=0) == []


async def test_updates_are_posted_with_the_secret_and_redelivered_until_2xx(fake, bot):
    async with Receiver([500, 401]) as receiver:
        sent = fake.user_sends("hello", chat_id=1001)
        await bot.set_webhook(receiver.url, secret_token="the_secret")
        await fake.wait_for(lambda: len(receiver.got) == 3)
        assert receiver.got == [(sent["update_id"], "the_secret")] * 3
        await fake.wait_for(lambda: not fake.pending_updates())
        info = await bot.get_webhook_info()
        assert info.last_error_message == "Wrong response from the webhook: 401 Unauthorized"
        assert info.pending_update_count == 0


async def test_a_load_balancer_in_front_round_robin_routes_and_duplicates(fake, bot):
    async with Receiver() as one, Receiver() as two:
        await bot.set_webhook("https://bot.example.org/hook", secret_token="s")
        fake.webhook.balance([one.url, two.url])
        ids = [fake.user_sends(f"m{n}", chat_id=1001)["update_id"] for n in range(4)]
        await fake.wait_for(lambda: len(one.got) + len(two.got) == 4)
        assert [u for u, _ in one.got] == ids[0::2] and [u for u, _ in two.got] == ids[1::2]
        twice = fake.user_sends("twice", chat_id=1001)["update_id"]
        fake.webhook.route(twice, one.url, two.url)
        await fake.wait_for(lambda: (twice, "s") in one.got and (twice, "s") in two.got)


async def test_an_unreachable_replica_gets_the_update_redelivered_elsewhere(fake, bot):
    async with Receiver() as alive:
        await bot.set_webhook("https://bot.example.org/hook", secret_token="s")
        fake.webhook.balance(["http://127.0.0.1:9/hook", alive.url])  # port 9: refused
        sent = fake.user_sends("hello", chat_id=1001)
        await fake.wait_for(lambda: alive.got)
        assert alive.got == [(sent["update_id"], "s")]
        assert [d.status for d in fake.webhook.deliveries] == [None, 200]


async def test_deliveries_run_in_parallel_across_chats_and_in_order_within_one(fake, bot):
    gate = asyncio.Event()
    got: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        text = (await request.json())["message"]["text"]
        got.append(text)
        if text == "a1":
            await gate.wait()  # the bot is slow with chat A's first update
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        await bot.set_webhook(f"http://{host}:{port}/hook")
        fake.user_sends("a1", chat_id=1)
        fake.user_sends("a2", chat_id=1)
        fake.user_sends("b1", chat_id=2)
        await fake.wait_for(lambda: "b1" in got)
        assert got == ["a1", "b1"]  # chat B did not wait; A's next update did
        gate.set()
        await fake.wait_for(lambda: len(got) == 3)
        assert got == ["a1", "b1", "a2"]
    finally:
        await runner.cleanup()
