"""``FakeTelegram``: an aiohttp server speaking the Bot API strictly, plus test controls."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

from . import simulate
from .errors import CONFLICT, ApiError
from .files import FileService, photo_sizes_of, register
from .flood import GROUP_PER_MINUTE
from .methods import BotMethods
from .models import ChatInfo, ChatMessage, DraftFrame, RecordedRequest
from .params import MAX_UPLOAD, Params, read_params
from .state import OPT_IN_UPDATES, World, update_type
from .webhook import Webhook

T = TypeVar("T")
_POLL_SLICE = 0.05  # how often a long poll re-checks for a vanished client
MEMBER_STATUSES = frozenset({"creator", "administrator", "member", "left"})
# ChatMemberAdministrator's required fields: a typical group admin's rights.
ADMIN_RIGHTS = {
    "can_be_edited": False, "can_manage_chat": True, "can_delete_messages": True,
    "can_manage_video_chats": True, "can_restrict_members": True,
    "can_promote_members": False, "can_change_info": True, "can_invite_users": True,
    "can_post_stories": False, "can_edit_stories": False, "can_delete_stories": False,
    "can_send_welcome_messages": False, "can_pin_messages": True,
}


@dataclass
class _Failure:
    error_code: int
    description: str
    retry_after: int | None
    times: int


@dataclass
class _Drop:
    times: int
    when: Callable[[dict[str, Any]], bool] | None


class FakeTelegram:
    """A local Bot API server: real HTTP, Telegram's limits and error texts, simulated users."""

    def __init__(
        self,
        token: str = "123456:TEST-TOKEN",
        *,
        bot_id: int = 123456,
        bot_username: str = "chatmux_test_bot",
        bot_first_name: str = "chatmux",
        group_edit_limit_per_minute: int | None = None,
        flood: bool = False,
        global_per_second: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`group_edit_limit_per_minute`: a rolling 60 s budget of sends and edits per group.
        `flood`: Telegram-like flood control everywhere (see `flood.FloodControl`): per private
        chat, messages and edits 1/s (burst 3) and drafts 4/s (burst 4); groups 20 a minute
        unless `group_edit_limit_per_minute` says otherwise. `global_per_second`: a cap on all
        the bot's messages and edits together (off unless given). `clock`: what `now` reads
        (plus `advance`); tests of flood waits pass a stopped one."""
        self.token, self.bot_id = token, bot_id
        bot_user = {
            "id": bot_id,
            "is_bot": True,
            "first_name": bot_first_name,
            "username": bot_username,
        }
        self.world = World(bot_user)
        self.requests: list[RecordedRequest] = []
        self.internal_errors: list[BaseException] = []
        self._clock = clock
        self._time_offset = 0.0  # see advance()
        group_limit = group_edit_limit_per_minute
        if group_limit is None and flood:
            group_limit = GROUP_PER_MINUTE
        self._methods = BotMethods(self.world, group_limit=group_limit, clock=self.now,
                                   private_flood=flood, global_per_second=global_per_second)
        # Called after each successful call: (method name, params, result, time.monotonic()
        # when it ended; real time, not `now`).
        self.observers: list[Callable[[str, dict[str, Any], Any, float], None]] = []
        self.files = FileService(self.world)
        self.webhook = Webhook(self.world, lambda u: update_type(u) not in OPT_IN_UPDATES)
        handlers: dict[str, Callable[[Params], Any]] = {
            **self._methods.table(),
            "getUpdates": self._get_updates,
            "getFile": self.files.get_file,
            "setWebhook": self.webhook.set_webhook,
            "deleteWebhook": self.webhook.delete_webhook,
            "getWebhookInfo": self.webhook.info,
        }
        self._handlers = {name.lower(): (name, fn) for name, fn in handlers.items()}
        self._failures: dict[str, list[_Failure]] = {}
        # (method, chat_id) -> when the flood wait of an injected 429 ends (see fail_next)
        self._floods: dict[tuple[str, int | None], float] = {}
        self._drops: dict[str, list[_Drop]] = {}
        self._allowed_updates: list[str] | None = None
        self._poller: object | None = None
        self._runner: web.AppRunner | None = None
        self._base_url = ""
        self._closing = False

    # --- lifecycle -----------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on ``host:port`` (0 = any free port); see :attr:`base_url`."""
        app = web.Application(client_max_size=MAX_UPLOAD + 1024 * 1024)
        app.router.add_get("/file/{segment}/{path:.+}", self._download)
        app.router.add_route("*", "/{segment}/{method}", self._handle)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_host, bound_port = self._runner.addresses[0][:2]
        self._base_url = f"http://{bound_host}:{bound_port}"

    async def stop(self) -> None:
        """Finish pending long polls and webhook deliveries and shut the server down."""
        self._closing = True
        self.world.notify()
        await self.webhook.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._closing = False

    @property
    def group_edit_limit_per_minute(self) -> int | None:
        """The per-group budget of sends and edits in any 60 s (None: no limit); settable."""
        return self._methods.flood.group_per_minute

    @group_edit_limit_per_minute.setter
    def group_edit_limit_per_minute(self, value: int | None) -> None:
        self._methods.group_limit = self._methods.flood.group_per_minute = value

    @property
    def base_url(self) -> str:
        """``http://host:port`` for ``TelegramAPIServer.from_base``."""
        if not self._base_url:
            raise RuntimeError("FakeTelegram is not started")
        return self._base_url

    # --- HTTP ----------------------------------------------------------------------
    @staticmethod
    def _answer(body: dict[str, Any], status: int = 200) -> web.Response:
        return web.json_response(body, status=status)

    async def _not_found(self, request: web.Request) -> web.Response:
        return self._answer(ApiError(404, "Not Found").body(), 404)

    async def _download(self, request: web.Request) -> web.Response:
        """A file getFile handed out, with the right token; else Telegram's 404."""
        segment, path = request.match_info["segment"], request.match_info["path"]
        content = self.files.content(path) if segment == f"bot{self.token}" else None
        if content is None:
            return await self._not_found(request)
        return web.Response(body=content, content_type="application/octet-stream")

    async def _handle(self, request: web.Request) -> web.Response:
        segment, method = request.match_info["segment"], request.match_info["method"]
        if not segment.startswith("bot"):
            return await self._not_found(request)
        if segment.removeprefix("bot") != self.token:
            return self._answer(ApiError(401, "Unauthorized").body(), 401)
        name, handler = self._handlers.get(method.lower(), (method, None))
        record = RecordedRequest(name, {}, time=time.monotonic())
        try:
            params = await read_params(request)
        except ApiError as error:
            self.requests.append(record)
            return self._fail(record, error)
        record.params = params.describe()
        self.requests.append(record)
        drop = self._drop_for(name, record.params)
        if drop is not None:
            return self._drop(request, drop, record)
        try:
            if handler is None:
                raise ApiError(404, "Not Found")
            self._inject_failure(name, params)
            result = handler(params)
            if inspect.isawaitable(result):
                result = await result
        except ApiError as error:
            return self._fail(record, error)
        except Exception as error:  # a bug in the fake: make it loud
            self.internal_errors.append(error)
            return self._fail(record, ApiError(500, f"Internal Server Error: {error!r}"))
        record.ok, record.result = True, result
        if self.observers:
            self._observe(name, record.params, result)
        return self._answer({"ok": True, "result": result})

    def _observe(self, name: str, params: dict[str, Any], result: Any) -> None:
        now = time.monotonic()
        for observer in self.observers:
            try:
                observer(name, params, result, now)
            except Exception as error:  # a broken observer must not break the call
                self.internal_errors.append(error)

    def _fail(self, record: RecordedRequest, error: ApiError) -> web.Response:
        record.error, record.error_code = error.description, error.code
        return self._answer(error.body(), error.code)

    def _inject_failure(self, name: str, params: Params) -> None:
        """Raise the next injected failure of `name`. A 429 starts a flood wait, as Telegram's
        does: the same method in the same chat is refused (429, with the seconds left) until
        `retry_after` has passed; retrying early does not help."""
        chat = _chat_key(params)
        until = self._floods.get((name.lower(), chat))
        if until is not None:
            left = until - self.now()
            if left > 0:
                wait = math.ceil(left)
                raise ApiError(429, f"Too Many Requests: retry after {wait}", retry_after=wait)
            del self._floods[(name.lower(), chat)]
        queue = self._failures.get(name.lower())
        if not queue:
            return
        failure = queue[0]
        failure.times -= 1
        if failure.times <= 0:
            queue.pop(0)
        if failure.error_code == 429 and failure.retry_after:
            self._floods[(name.lower(), chat)] = self.now() + failure.retry_after
        raise ApiError(failure.error_code, failure.description, retry_after=failure.retry_after)

    def _drop_for(self, name: str, params: dict[str, Any]) -> _Drop | None:
        for drop in self._drops.get(name.lower(), []):
            if drop.times > 0 and (drop.when is None or drop.when(params)):
                return drop
        return None

    def _drop(self, request: web.Request, drop: _Drop, record: RecordedRequest) -> web.Response:
        """Close the connection without an answer (the call was not carried out)."""
        drop.times -= 1
        record.error = "connection dropped"
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500)  # never reaches the client: the socket is gone

    def now(self) -> float:
        """The fake's clock (monotonic, moved on by `advance`)."""
        return self._clock() + self._time_offset

    def advance(self, seconds: float) -> None:
        """Let `seconds` pass for flood waits (a long 429 ends without the test sleeping)."""
        self._time_offset += seconds

    # --- getUpdates ------------------------------------------------------------------
    def _allowed(self, update: dict[str, Any]) -> bool:
        kind = update_type(update)
        if self._allowed_updates is None:
            return kind not in OPT_IN_UPDATES
        return kind in self._allowed_updates

    async def _get_updates(self, p: Params) -> list[dict[str, Any]]:
        self.webhook.check_polling()
        offset, limit, timeout = p.int("offset") or 0, p.int("limit"), p.int("timeout") or 0
        limit = 100 if limit is None else min(max(limit, 1), 100)
        allowed = p.json("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = [str(a) for a in allowed] or None
        self.world.confirm(offset)
        me = object()
        if self._poller is not None:
            self.world.notify()  # the older request gets 409
        self._poller = me
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout, 0)
        try:
            while True:
                if self._poller is not me:
                    raise ApiError(409, CONFLICT)
                event = self.world.event
                ready = [u for u in self.world.updates if self._allowed(u)][:limit]
                remaining = deadline - loop.time()
                if ready or remaining <= 0 or self._closing or _gone(p.request):
                    return ready
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), min(remaining, _POLL_SLICE))
        finally:
            if self._poller is me:
                self._poller = None

    # --- simulated users -----------------------------------------------------------
    def user_sends(
        self,
        text: str | None = None,
        *,
        chat_id: int,
        user_id: int | None = None,
        chat_type: str = "private",
        first_name: str = "Ann",
        username: str | None = None,
        language_code: str | None = "en",
        chat_title: str | None = None,
        reply_to_message_id: int | None = None,
        entities: list[dict[str, Any]] | None = None,
        sticker: bool = False,
        photo: bool = False,
        thread_id: int | None = None,
    ) -> dict[str, Any]:
        """A user writes in a chat (in topic `thread_id`, see `create_topic`); returns the
        queued Update."""
        uid = simulate.resolve_user(chat_id, user_id, chat_type)
        user = simulate.user_dict(uid, first_name, username, language_code)
        return simulate.user_sends(
            self.world,
            text,
            chat_id=chat_id,
            user=user,
            chat_type=chat_type,
            chat_title=chat_title,
            reply_to_message_id=reply_to_message_id,
            entities=entities,
            sticker=sticker,
            photo=photo,
            thread_id=thread_id,
        )

    def user_edits(self, chat_id: int, message_id: int, text: str,
                   entities: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The author of text message `message_id` edits it; returns the queued
        ``edited_message`` Update (same message_id, `edit_date` set)."""
        return simulate.user_edits(self.world, chat_id, message_id, text, entities)

    def reactions(self, chat_id: int, message_id: int) -> list[str]:
        """The bot's reaction on a message as the user sees it now ([] for none)."""
        message = self.world.find(chat_id, message_id)
        if message is None:
            raise ValueError(f"no message {message_id} in chat {chat_id}")
        return list(message.bot_reactions)


    def user_sends_photo(self, image: bytes, *, chat_id: int, caption: str | None = None,
                         media_group_id: str | None = None, **who: Any) -> dict[str, Any]:
        """A user sends a photo (PNG/JPEG/GIF/WebP bytes; Telegram's JPEG sizes are made of
        it), optionally with a caption and as part of album `media_group_id`."""
        sizes = photo_sizes_of(self.world, image)
        return self._user_sends_file(chat_id, {"photo": sizes}, caption, media_group_id, who)

    def user_sends_document(self, content: bytes, *, chat_id: int, file_name: str,
                            mime_type: str, caption: str | None = None,
                            media_group_id: str | None = None, **who: Any) -> dict[str, Any]:
        """A user sends a file (e.g. an image "as a file", without compression)."""
        file = register(self.world, "document", content, prefix="BQACAgIAAxkBAAI",
                        file_name=file_name, mime_type=mime_type)
        document = {"file_id": file["file_id"], "file_unique_id": file["file_unique_id"],
                    "file_name": file_name, "mime_type": mime_type, "file_size": file["size"]}
        return self._user_sends_file(chat_id, {"document": document}, caption, media_group_id,
                                     who)

    def user_sends_voice(self, audio: bytes, *, chat_id: int, duration: int,
                         mime_type: str = "audio/ogg", **who: Any) -> dict[str, Any]:
        """A user records a voice note of `duration` seconds."""
        file = register(self.world, "voice", audio, prefix="AwACAgIAAxkBAAI",
                        mime_type=mime_type)
        voice = {"file_id": file["file_id"], "file_unique_id": file["file_unique_id"],
                 "duration": duration, "mime_type": mime_type, "file_size": file["size"]}
        return self._user_sends_file(chat_id, {"voice": voice}, None, None, who)

    def user_sends_video_note(self, video: bytes, *, chat_id: int, duration: int,
                              length: int = 384, **who: Any) -> dict[str, Any]:
        """A user records a round video note of `duration` seconds."""
        file = register(self.world, "video_note", video, prefix="DQACAgIAAxkBAAI",
                        mime_type="video/mp4")
        note = {"file_id": file["file_id"], "file_unique_id": file["file_unique_id"],
                "length": length, "duration": duration, "file_size": file["size"]}
        return self._user_sends_file(chat_id, {"video_note": note}, None, None, who)

    def _user_sends_file(self, chat_id: int, media: dict[str, Any], caption: str | None,
                         media_group_id: str | None, who: dict[str, Any]) -> dict[str, Any]:
        chat_type = who.pop("chat_type", "private")
        uid = simulate.resolve_user(chat_id, who.pop("user_id", None), chat_type)
        user = simulate.user_dict(uid, who.pop("first_name", "Ann"), who.pop("username", None),
                                  who.pop("language_code", "en"))
        return simulate.user_sends_media(
            self.world, chat_id=chat_id, user=user, chat_type=chat_type,
            chat_title=who.pop("chat_title", None), media=media, caption=caption,
            media_group_id=media_group_id, **who)

    def create_topic(self, chat_id: int, name: str, *, user_id: int | None = None,
                     first_name: str = "Ann", by_bot: bool = False) -> int:
        """A user (or, with `by_bot`, the bot itself) opens a topic in forum supergroup
        `chat_id` (created on first use) or in a private chat; returns the topic's
        message_thread_id. Messages without one are in the General topic."""
        chat_type = "private" if chat_id > 0 else "supergroup"
        uid = simulate.resolve_user(chat_id, user_id, chat_type)
        user = simulate.user_dict(uid, first_name, None, "en")
        return simulate.create_topic(self.world, chat_id, name, user, by_bot)

    def topic_messages(self, chat_id: int, thread_id: int | None) -> list[ChatMessage]:
        """The bot's messages in one topic (None: the chat itself, or a forum's General)."""
        return [m for m in self.bot_messages(chat_id) if m.thread_id == thread_id]

    def chat_sends(
        self,
        text: str | None = None,
        *,
        chat_id: int,
        channel_id: int | None = None,
        channel_title: str | None = None,
        author_signature: str | None = None,
        reply_to_message_id: int | None = None,
        entities: list[dict[str, Any]] | None = None,
        sticker: bool = False,
    ) -> dict[str, Any]:
        """A message on behalf of a chat in supergroup `chat_id`: an anonymous admin's
        (`channel_id` None: the group is the sender, `from` is GroupAnonymousBot), or a
        channel's (`from` is Channel_Bot); returns the queued Update."""
        user, sender = simulate.sender_chat(self.world, chat_id, channel_id, channel_title)
        return simulate.user_sends(
            self.world,
            text,
            chat_id=chat_id,
            user=user,
            chat_type="supergroup",
            chat_title=None,
            reply_to_message_id=reply_to_message_id,
            entities=entities,
            sticker=sticker,
            photo=False,
            sender_chat=sender,
            author_signature=author_signature if channel_id is None else None,
        )

    def user_presses(
        self,
        chat_id: int,
        message_id: int,
        callback_data: str,
        *,
        user_id: int | None = None,
        first_name: str = "Ann",
        language_code: str | None = "en",
        forged: bool = False,
    ) -> str:
        """A user presses an inline button of a bot message; returns the callback query id.

        With `forged`, the data need not match a button shown (a modified client).
        """
        chat = self.world.chats.get(chat_id)
        if chat is None:
            raise ValueError(f"unknown chat {chat_id}")
        uid = simulate.resolve_user(chat_id, user_id, chat.type)
        user = simulate.user_dict(uid, first_name, None, language_code)
        return simulate.user_presses(
            self.world, chat_id, message_id, callback_data, user, forged=forged
        )

    def resend_callback(self, query_id: str) -> str:
        """The same callback query arrives again in a new update (a client retry)."""
        return simulate.resend_callback(self.world, query_id)

    def user_stops_generation(self, chat_id: int, draft_id: int) -> dict[str, Any]:
        """A user presses the stop button of a streamed draft; returns the queued Update."""
        return simulate.user_stops_generation(self.world, chat_id, draft_id)

    def user_deletes(self, chat_id: int, message_id: int) -> None:
        """A user (or a group admin) deletes a message: it is gone, and editing it fails with
        "Bad Request: message to edit not found"."""
        if self.world.messages.get(chat_id, {}).pop(message_id, None) is None:
            raise ValueError(f"no message {message_id} in chat {chat_id}")

    def set_member_status(self, chat_id: int, user_id: int, status: str, *,
                          first_name: str = "Ann", is_anonymous: bool = False) -> None:
        """Make a user the group's "creator", an "administrator", a plain "member", or
        "left" (what getChatMember answers). The group is created if new."""
        if status not in MEMBER_STATUSES:
            raise ValueError(f"status must be one of {sorted(MEMBER_STATUSES)}")
        uid = simulate.resolve_user(chat_id, user_id, "supergroup")
        chat = self.world.chats.setdefault(chat_id, ChatInfo(chat_id, "supergroup",
                                                             title="Test group"))
        if chat.type == "private":
            raise ValueError("private chats have no admins")
        user = self.world.users.get(uid) or simulate.user_dict(uid, first_name, None, "en")
        self.world.users[uid] = user
        member: dict[str, Any] = {"status": status, "user": user}
        if status == "creator":
            member["is_anonymous"] = is_anonymous
        elif status == "administrator":
            member.update(ADMIN_RIGHTS, is_anonymous=is_anonymous)
        self.world.members.setdefault(chat_id, {})[uid] = member

    def user_blocks_bot(self, chat_id: int, blocked: bool = True) -> None:
        """Later calls to this private chat fail with 403 "bot was blocked by the user"."""
        self.world.chats[chat_id].blocked = blocked

    def fail_next(
        self,
        method: str,
        *,
        error_code: int,
        description: str,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` calls of ``method`` fail with this error.

        A 429 with ``retry_after`` also starts a flood wait for that method in that chat: calls
        before it ends get 429 with the seconds left and do not use up ``times`` (see
        `advance` to end a long one).
        """
        failure = _Failure(error_code, description, retry_after, times)
        self._failures.setdefault(method.lower(), []).append(failure)

    def drop_next(
        self, method: str, *, times: int = 1,
        when: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        """The next ``times`` calls of ``method`` (those whose parameters satisfy ``when``, if
        given) lose their connection before an answer: the call is not carried out and the
        client sees a network error."""
        self._drops.setdefault(method.lower(), []).append(_Drop(times, when))

    # --- inspection ----------------------------------------------------------------
    def calls(self, method: str) -> list[dict[str, Any]]:
        """Parameters of the calls of ``method`` that did not fail (case-insensitive).

        A long poll still waiting counts: it was accepted (it drops out if it later gets 409).
        """
        name = method.lower()
        return [r.params for r in self.requests if r.error is None and r.method.lower() == name]

    def chat_messages(self, chat_id: int) -> list[ChatMessage]:
        """What the user sees now in the chat, oldest first (user and bot messages)."""
        return list(self.world.messages.get(chat_id, {}).values())

    def bot_messages(self, chat_id: int) -> list[ChatMessage]:
        return [m for m in self.chat_messages(chat_id) if m.from_bot]

    def drafts(self, chat_id: int) -> list[DraftFrame]:
        """Every sendMessageDraft frame shown in the chat, in order."""
        return list(self.world.drafts.get(chat_id, []))

    def chat_actions(self, chat_id: int) -> list[str]:
        return list(self.world.chat_actions.get(chat_id, []))

    def callback_answers(self) -> dict[str, dict[str, Any]]:
        """callback_query id -> answerCallbackQuery parameters."""
        return dict(self.world.callback_answers)

    def commands(self) -> dict[str, list[dict[str, Any]]]:
        """setMyCommands lists by scope key: "default" or scope JSON, plus ":<lang>" if given."""
        return dict(self.world.commands)

    def pending_updates(self) -> list[dict[str, Any]]:
        """Updates not yet confirmed by a getUpdates offset."""
        return list(self.world.updates)

    async def wait_for(self, predicate: Callable[[], T], timeout: float = 10.0) -> T:  # noqa: ASYNC109
        """Poll ``predicate`` every 20 ms until it is truthy; return its value."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = predicate()
            if result:
                return result
            if loop.time() >= deadline:
                raise AssertionError(
                    f"condition not met within {timeout} s; recent requests:\n"
                    + self.describe_requests()
                )
            await asyncio.sleep(0.02)

    async def wait_for_bot_messages(
        self,
        chat_id: int,
        count: int,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> list[ChatMessage]:
        """Wait until the chat shows at least ``count`` bot messages; return them all."""

        def enough() -> list[ChatMessage] | None:
            messages = self.bot_messages(chat_id)
            return messages if len(messages) >= count else None

        return await self.wait_for(enough, timeout)

    def describe_requests(self, last: int = 20) -> str:
        """The last non-getUpdates requests, one per line, for assertion messages."""
        lines = []
        for r in [r for r in self.requests if r.method != "getUpdates"][-last:]:
            outcome = "ok" if r.ok else f"{r.error_code} {r.error}"
            params = {k: v for k, v in r.params.items() if k != "document"}
            lines.append(f"  {r.method} {params!r:.300} -> {outcome}")
        return "\n".join(lines) or "  (none)"


def _chat_key(params: Params) -> int | None:
    value = params.get("chat_id")
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _gone(request: web.Request | None) -> bool:
    """Whether the client of ``request`` hung up (aiogram cancels its long poll on shutdown)."""
    if request is None:
        return False
    transport = request.transport
    return transport is None or transport.is_closing()
