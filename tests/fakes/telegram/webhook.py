"""The fake's webhook: setWebhook/deleteWebhook/getWebhookInfo checked like Telegram's, and a
deliverer POSTing queued updates to the webhook (or to replicas behind it, like a load
balancer), redelivering on any non-2xx answer or connection error as Telegram does."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from .errors import ApiError, bad_request
from .params import Params
from .state import World

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
WEBHOOK_CONFLICT = ("Conflict: can't use getUpdates method while webhook is active; "
                    "use deleteWebhook to delete the webhook first")
WEBHOOK_PORTS = frozenset({80, 88, 443, 8443})
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})  # the fake allows http to these only


@dataclass
class Delivery:
    """One POST of an update: where, what came back (status, or the connection error)."""

    update_id: int
    url: str
    status: int | None
    error: str | None = None
    time: float = field(default_factory=time.monotonic)


class Webhook:
    """The webhook state of the fake and its delivery loop (one update at a time, in order)."""

    def __init__(self, world: World, allowed: Callable[[dict[str, Any]], bool],
                 retry_delay: float = 0.1) -> None:
        self.world, self._allowed = world, allowed
        self.url = ""
        self.secret: str | None = None
        self.max_connections = 40
        self.allowed_updates: list[str] | None = None
        self.last_error: tuple[int, str] | None = None
        self.retry_delay = retry_delay
        self.deliveries: list[Delivery] = []
        # The "load balancer": replica URLs taking turns (None: the webhook URL itself).
        self._replicas: list[str] | None = None
        self._turns: itertools.cycle[str] | None = None
        self._routes: dict[int, list[str]] = {}  # update id -> URLs it goes to
        self.duplicate_all = False  # every update to every replica
        self.secret_override: str | None = None  # what the fake sends instead (tests)
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def active(self) -> bool:
        return bool(self.url)

    # --- Bot API methods -------------------------------------------------------------
    def set_webhook(self, p: Params) -> bool:
        url = str(p.get("url") or "")
        if not url:
            self._clear(p.flag("drop_pending_updates"))
            return True
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise bad_request("bad webhook: Failed to resolve host: Name or service not "
                              "known") from None
        if not parts.hostname:
            raise bad_request("bad webhook: Failed to resolve host: Name or service not known")
        loopback = parts.hostname in LOOPBACK
        if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        if not loopback and (port or 443) not in WEBHOOK_PORTS:
            raise bad_request("bad webhook: Webhook can be set up only on ports 80, 88, 443 "
                              "or 8443")
        secret = p.get("secret_token")
        if secret is not None and secret != "":
            secret = str(secret)
            if not re.fullmatch(r"[A-Za-z0-9_-]*", secret):
                raise bad_request("secret token contains unallowed characters")
            if len(secret) > 256:
                raise bad_request("secret token is too long")
        max_connections = p.int("max_connections")
        if max_connections is not None and not 1 <= max_connections <= 100:
            raise bad_request("bad webhook: max_connections must be between 1 and 100")
        allowed = p.json("allowed_updates")
        if isinstance(allowed, list):
            self.allowed_updates = [str(a) for a in allowed] or None
        if p.flag("drop_pending_updates"):
            self.world.updates.clear()
        self.url, self.secret = url, secret or None
        self.max_connections = max_connections or 40
        self._start()
        return True

    def delete_webhook(self, p: Params) -> bool:
        self._clear(p.flag("drop_pending_updates"))
        return True

    def info(self, p: Params | None = None) -> dict[str, Any]:
        result: dict[str, Any] = {
            "url": self.url,
            "has_custom_certificate": False,
            "pending_update_count": len(self.world.updates),
        }
        if self.url:
            result["max_connections"] = self.max_connections
            if self.allowed_updates is not None:
                result["allowed_updates"] = list(self.allowed_updates)
        if self.last_error is not None:
            result["last_error_date"], result["last_error_message"] = self.last_error
        return result

    def check_polling(self) -> None:
        """getUpdates is refused while a webhook is set."""
        if self.active:
            raise ApiError(409, WEBHOOK_CONFLICT)

    def _clear(self, drop_pending: bool) -> None:
        self.url, self.secret, self.allowed_updates = "", None, None
        if drop_pending:
            self.world.updates.clear()
        self.world.notify()

    # --- test controls ---------------------------------------------------------------
    def balance(self, replicas: list[str] | None) -> None:
        """Deliver each update to the next of `replicas` in turn (full URLs), as a load
        balancer in front of the webhook URL would; None: to the webhook URL itself."""
        self._replicas = list(replicas) if replicas else None
        self._turns = itertools.cycle(self._replicas) if self._replicas else None

    def route(self, update_id: int, *urls: str) -> None:
        """Deliver update `update_id` to these URLs, each once (two: a duplicated delivery)."""
        self._routes[update_id] = list(urls)

    # --- delivery ----------------------------------------------------------------------
    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._deliver_loop())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _targets(self, update: dict[str, Any]) -> list[str]:
        routed = self._routes.pop(update["update_id"], None)
        if routed:
            return routed
        if self._replicas and self.duplicate_all:
            return list(self._replicas)
        if self._turns is not None:
            return [next(self._turns)]
        return [self.url]

    def _wanted(self, update: dict[str, Any]) -> bool:
        if self.allowed_updates is None:
            return self._allowed(update)
        return next(k for k in update if k != "update_id") in self.allowed_updates

    async def _deliver_loop(self) -> None:
        """Like Telegram: up to `max_connections` deliveries at once, but one at a time per
        chat and in order; an update is redelivered until a 2xx."""
        self._session = self._session or aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=10))
        busy: dict[object, asyncio.Task[None]] = {}  # chat → its delivery in flight
        try:
            while self.active:
                event = self.world.event
                # Updates the bot did not ask for are dropped, as Telegram does.
                self.world.updates = [u for u in self.world.updates if self._wanted(u)]
                waiting: set[object] = set()  # chats with an earlier update still pending
                for update in self.world.updates:
                    chat = _chat_of(update)
                    if len(busy) >= self.max_connections:
                        break
                    if chat in busy or chat in waiting:
                        waiting.add(chat)
                        continue
                    waiting.add(chat)
                    busy[chat] = asyncio.create_task(self._deliver(update))
                    busy[chat].add_done_callback(lambda _t, c=chat: self._done(busy, c))
                await event.wait()
        finally:
            for task in busy.values():
                task.cancel()
            if busy:
                await asyncio.wait(list(busy.values()))

    def _done(self, busy: dict[object, asyncio.Task[None]], chat: object) -> None:
        busy.pop(chat, None)
        self.world.notify()  # the chat's next update may go

    async def _deliver(self, update: dict[str, Any]) -> None:
        delivered = False
        for url in self._targets(update):
            delivered = await self._post(url, update) or delivered
        if delivered:
            with contextlib.suppress(ValueError):
                self.world.updates.remove(update)
        else:  # Telegram redelivers the same update later, to whichever replica
            await asyncio.sleep(self.retry_delay)

    async def _post(self, url: str, update: dict[str, Any]) -> bool:
        assert self._session is not None
        headers = {}
        secret = self.secret_override if self.secret_override is not None else self.secret
        if secret:
            headers[SECRET_HEADER] = secret
        try:
            async with self._session.post(url, json=update, headers=headers) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self.deliveries.append(Delivery(update["update_id"], url, None, repr(exc)))
            self.last_error = (int(time.time()), "Connection refused")
            return False
        self.deliveries.append(Delivery(update["update_id"], url, status))
        if 200 <= status < 300:
            return True
        self.last_error = (int(time.time()),
                           f"Wrong response from the webhook: {status} {_reason(status)}")
        return False


def _chat_of(update: dict[str, Any]) -> object:
    """The chat an update belongs to (its deliveries keep their order), or the update itself."""
    payload = update[next(k for k in update if k != "update_id")]
    if isinstance(payload, dict):
        chat = payload.get("chat") or (payload.get("message") or {}).get("chat")
        if isinstance(chat, dict) and "id" in chat:
            return chat["id"]
    return ("update", update["update_id"])


def _reason(status: int) -> str:
    with contextlib.suppress(ValueError):
        return HTTPStatus(status).phrase
    return ""
