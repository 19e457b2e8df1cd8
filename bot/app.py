"""Composition root: builds the long-lived objects once and hands them to the Dispatcher."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest
from aiogram.fsm.storage.base import BaseStorage, DefaultKeyBuilder
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.fsm.storage.redis import RedisStorage
from aiogram.fsm.strategy import FSMStrategy
from aiogram.types import BotCommand, BotCommandScopeChat
from aiogram.utils.formatting import Text
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from bot.answering import FINAL_MARGIN, FINAL_SENDS, Answerer
from bot.firstrun import pool_agents_counter
from bot.forgetting import Forgetting
from bot.fsm_storage import ResilientStorage
from bot.handlers import feature_routers
from bot.handlers.rating import EDIT_TTL
from bot.limits import Limits
from bot.middlewares.dedup import DedupMiddleware
from bot.middlewares.edit_mode import EndEditOnCommand
from bot.middlewares.limits import BannedUsers, PressFlood
from bot.middlewares.observe import ObserveUpdates
from bot.middlewares.press_guard import PressGuard
from bot.middlewares.user import UserMiddleware
from bot.model_sync import ModelSync
from bot.observability.http import add_probe_routes, start_probe_server, stop_probe_server
from bot.observability.logs import install_log_context
from bot.observability.metrics import Metrics
from bot.queueing import QuestionQueue
from bot.response_types import KeepResponseTypes
from bot.settings import ConfigError, Settings
from bot.streaming.delivery import RetryAfterMiddleware
from bot.streaming.stops import StopSignals
from bot.texts import LANGUAGES, lang_of, t
from bot.webhook import CANCEL_GRACE, build_webhook_app, serving, webhook_path
from inference.catalogue import load_catalogue
from inference.first_run import FirstRunCheck
from inference.keys import KeyRing
from inference.redaction import install_redaction
from inference.registry import ModelRegistry
from storage.db import create_engine, create_sessionmaker
from storage.question_queue import MemoryQueues, QueueStore, RedisQueues
from storage.repositories.admin import AdminRepository
from storage.repositories.conversations import ConversationRepository
from storage.repositories.feedback import FeedbackRepository
from storage.repositories.limits import LimitsRepository
from storage.repositories.privacy import PrivacyRepository
from storage.repositories.questions import QuestionRepository
from storage.repositories.users import UserRepository
from storage.shared_state import MemoryState, RedisState, SharedState
from storage.token_bucket import MemoryBuckets, RedisBuckets, TokenBuckets

log = logging.getLogger(__name__)

# No statement of the bot's takes long: one that does, on a server that stopped answering,
# fails (and the user is told to try again) instead of holding the chat.
DB_COMMAND_TIMEOUT = 30.0
# Redis: a server that does not answer is given up on (calls fail open, see
# storage.shared_state) after this long; above the pool client's 5 s blocking reads.
REDIS_TIMEOUT = 10.0
REDIS_CONNECT_TIMEOUT = 5.0
# Webhook mode, after the answers' drain: other updates still being handled (button
# presses…) get this long; then open connections are closed within CONNECTIONS_GRACE.
UPDATE_GRACE = 5.0
CONNECTIONS_GRACE = 5.0
USER_COMMANDS = ("start", "help", "model", "new", "arena", "leaderboard", "stats", "lang",
                 "cancel", "system", "persona", "settings", "usage", "privacy")
ADMIN_COMMANDS = (
    ("addmodel", "Add a model: /addmodel id url=… model=… or hf=… draft=…"),
    ("rmmodel", "Remove a model"),
    ("enable", "Enable a model"),
    ("disable", "Disable a model"),
    ("models", "Models, replicas and their health"),
    ("export", "Preference dump: /export dpo|kto|arena|sft [days] [jsonl]"),
    ("tier", "Set a user's tier: /tier <id or @username> <tier>"),
    ("ban", "Ban a user: /ban <id or @username> [reason]"),
    ("unban", "Unban a user: /unban <id or @username>"),
)


@dataclass
class App:
    """Everything a running bot process holds, closed together."""

    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker
    registry: ModelRegistry
    state: SharedState
    fsm_storage: BaseStorage
    users: UserRepository
    conversations: ConversationRepository
    feedback: FeedbackRepository
    answerer: Answerer
    admin: AdminRepository
    model_sync: ModelSync
    queue: QuestionQueue
    questions: QuestionRepository
    limits: Limits
    privacy: PrivacyRepository
    forgetting: Forgetting
    first_run: FirstRunCheck  # why no model answers (the console's start, an admin's /start)
    stops: StopSignals = field(default_factory=StopSignals)
    metrics: Metrics = field(default_factory=Metrics)
    redis: Redis | None = None  # the shared state's client (readiness pings it)

    def workflow_data(self) -> dict[str, object]:
        """What handlers may ask for by parameter name."""
        return {
            "settings": self.settings,
            "registry": self.registry,
            "users": self.users,
            "conversations": self.conversations,
            "feedback": self.feedback,
            "answerer": self.answerer,
            "stops": self.stops,
            "shared_state": self.state,
            "admin": self.admin,
            "model_sync": self.model_sync,
            "queue": self.queue,
            "questions": self.questions,
            "metrics": self.metrics,
            "limits": self.limits,
            "privacy": self.privacy,
            "forgetting": self.forgetting,
            "first_run": self.first_run,
        }

    async def aclose(self) -> None:
        await self.first_run.aclose()
        await self.stops.aclose()
        await self.limits.aclose()
        await self.model_sync.aclose()
        await self.registry.aclose()
        await self.fsm_storage.close()
        await self.state.aclose()
        await self.engine.dispose()


def _redis(url: str) -> Redis:
    return Redis.from_url(url, socket_timeout=REDIS_TIMEOUT,
                          socket_connect_timeout=REDIS_CONNECT_TIMEOUT)


async def build_app(settings: Settings, secrets: Mapping[str, str] | None = None) -> App:
    catalogue = load_catalogue(settings.models_file)
    keys = KeyRing.from_catalogue(catalogue, os.environ if secrets is None else secrets,
                                  reserved=Settings.env_names())
    install_redaction([*settings.secret_values(), *keys.values()])
    install_log_context()
    metrics = Metrics()
    registry = ModelRegistry(catalogue, keys)
    engine = create_engine(settings.database_url, command_timeout=DB_COMMAND_TIMEOUT)
    sessionmaker = create_sessionmaker(engine)
    state: SharedState
    fsm_storage: BaseStorage
    redis: Redis | None = None
    buckets: TokenBuckets
    if settings.redis_url:
        redis = _redis(settings.redis_url)
        await redis.ping()
        state = RedisState(redis, settings.redis_prefix)
        queues: QueueStore = RedisQueues(redis, settings.redis_prefix)
        buckets = RedisBuckets(redis, settings.redis_prefix)
        fsm_storage = ResilientStorage(RedisStorage(
            _redis(settings.redis_url),
            key_builder=DefaultKeyBuilder(prefix=f"{settings.redis_prefix}:fsm", with_bot_id=True),
            # The only state is ✏️ edit mode, which expires: abandoned ones leave no keys.
            state_ttl=timedelta(seconds=EDIT_TTL), data_ttl=timedelta(seconds=EDIT_TTL),
        ))
    else:
        state, fsm_storage = MemoryState(), MemoryStorage()
        queues = MemoryQueues()
        buckets = MemoryBuckets()
    conversations = ConversationRepository(sessionmaker)
    feedback = FeedbackRepository(sessionmaker)
    admin = AdminRepository(sessionmaker)
    stops = StopSignals(redis, settings.redis_prefix)
    answerer = Answerer(settings, registry, conversations, feedback, state, stops,
                        metrics=metrics)
    questions = QuestionRepository(sessionmaker)
    privacy = PrivacyRepository(sessionmaker)
    return App(
        settings=settings,
        engine=engine,
        sessionmaker=sessionmaker,
        registry=registry,
        state=state,
        fsm_storage=fsm_storage,
        users=UserRepository(sessionmaker),
        conversations=conversations,
        feedback=feedback,
        answerer=answerer,
        admin=admin,
        model_sync=ModelSync(registry, admin, redis, settings.redis_prefix),
        queue=QuestionQueue(answerer, queues, questions, registry),
        questions=questions,
        limits=Limits(settings, registry, LimitsRepository(sessionmaker), buckets, state),
        privacy=privacy,
        forgetting=Forgetting(privacy, stops, queues, buckets, state, fsm_storage),
        stops=stops,
        metrics=metrics,
        redis=redis,
        first_run=FirstRunCheck(registry, pool_agents=pool_agents_counter(redis, settings)),
    )


def shutdown_bound(settings: Settings) -> float:
    """The most a shutdown takes (`Answerer.drain`, plus a few seconds to close)."""
    return settings.shutdown_grace + FINAL_SENDS + 2 * FINAL_MARGIN + 5.0


def webhook_shutdown_bound(settings: Settings) -> float:
    """The most a webhook replica's shutdown takes: the answers' drain and closing
    (`shutdown_bound`), plus the other updates still being handled (UPDATE_GRACE, then
    CANCEL_GRACE for those cancelled)."""
    return shutdown_bound(settings) + UPDATE_GRACE + CANCEL_GRACE


def build_bot(settings: Settings, metrics: Metrics | None = None) -> Bot:
    """The Bot API client; `metrics` (the App's) counts its 429s."""
    assert settings.bot_token is not None
    session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_url))
    session.middleware(KeepResponseTypes())
    session.middleware(RetryAfterMiddleware(metrics=metrics))
    return Bot(
        settings.bot_token.get_secret_value(),
        session=session,
        # A reply to a message deleted meanwhile is sent anyway (not an error).
        default=DefaultBotProperties(parse_mode=None, allow_sending_without_reply=True),
    )


async def _set_commands(bot: Bot, admin_ids: frozenset[int]) -> None:
    for lang in LANGUAGES:
        commands = [BotCommand(command=c, description=t(f"cmd_{c}", lang)) for c in USER_COMMANDS]
        await bot.set_my_commands(commands, language_code=None if lang == "en" else lang)
    # Admin commands appear only in admins' own chats (the menu is cosmetic; handlers check).
    user_commands = [BotCommand(command=c, description=t(f"cmd_{c}", "en"))
                     for c in USER_COMMANDS]
    admin_commands = [BotCommand(command=c, description=d) for c, d in ADMIN_COMMANDS]
    for admin_id in sorted(admin_ids):
        try:
            await bot.set_my_commands(user_commands + admin_commands,
                                      scope=BotCommandScopeChat(chat_id=admin_id))
        except TelegramBadRequest as exc:  # the admin has not started the bot yet
            log.warning("no admin command menu for %s: %s", admin_id, exc.message)


def build_dispatcher(app: App) -> Dispatcher:
    # FSM state (✏️ edit mode) is per user and topic: an edit started in one topic is not
    # completed by a message in another.
    dp = Dispatcher(storage=app.fsm_storage, fsm_strategy=FSMStrategy.USER_IN_TOPIC,
                    **app.workflow_data())
    dp.update.outer_middleware(ObserveUpdates(app.metrics))
    dp.update.outer_middleware(DedupMiddleware(app.state))
    # Before any filter or handler: presses that cannot be the bot's buttons are refused,
    # banned users get nothing, and floods of presses stop.
    dp.callback_query.outer_middleware(PressGuard())
    banned = BannedUsers(app.limits)
    for observer in (dp.message, dp.edited_message, dp.callback_query):
        observer.outer_middleware(banned)
    dp.callback_query.outer_middleware(PressFlood(app.limits))
    # Inner middlewares of the Dispatcher wrap every router's handlers, and run only once a
    # handler's filters have passed: people are stored when they interact with the bot, not
    # for every group message it sees.
    user_middleware = UserMiddleware(app.users)
    dp.message.middleware(user_middleware)
    dp.callback_query.middleware(user_middleware)
    dp.edited_message.middleware(user_middleware)
    dp.message.middleware(EndEditOnCommand())
    dp.include_routers(*feature_routers())

    async def on_startup(bot: Bot) -> None:
        me = await bot.me()
        log.info("chatmux is up as @%s with %d models", me.username, len(app.registry.enabled()))
        await _set_commands(bot, app.settings.admin_ids)
        await app.limits.start()
        await app.model_sync.start()
        await app.stops.start()
        app.queue.start(bot)

    async def on_shutdown() -> None:
        await app.queue.close()  # what still waits is left for the next process
        # Answers being written finish, or end visibly as interrupted (`Answerer.drain`).
        await app.answerer.drain(app.settings.shutdown_grace)

    dp.startup.register(on_startup)
    dp.shutdown.register(on_shutdown)
    return dp


async def run_polling(settings: Settings, *, handle_signals: bool = True) -> None:
    """`chatmux run` with a token: long polling until stopped."""
    app = await build_app(settings)
    bot = build_bot(settings, app.metrics)
    dp = build_dispatcher(app)
    probes = None
    try:
        if settings.metrics_listen:
            probes = await start_probe_server(app, settings.metrics_listen)
        await bot.delete_webhook(drop_pending_updates=False)
        polling = asyncio.create_task(
            dp.start_polling(
                bot,
                handle_signals=handle_signals,
                allowed_updates=dp.resolve_used_update_types(),
                polling_timeout=20,
            )
        )
        try:
            await asyncio.shield(polling)
        except asyncio.CancelledError:
            # Cancelled from outside (an embedding app, tests): stop polling the orderly way,
            # so shutdown hooks run and no poller outlives the session.
            with contextlib.suppress(RuntimeError):
                await asyncio.wait_for(dp.stop_polling(), shutdown_bound(settings))
            with contextlib.suppress(asyncio.CancelledError):
                await polling
            raise
    finally:
        if probes is not None:
            await stop_probe_server(probes)
        await bot.session.close()
        await app.aclose()


async def run_webhook(settings: Settings, *, handle_signals: bool = True) -> None:
    """`chatmux run` with WEBHOOK_URL: serve Telegram's deliveries until SIGTERM/SIGINT (or
    cancelled). Shutdown stops taking updates first, then lets answers finish (up to
    SHUTDOWN_GRACE; then they end as interrupted, `Answerer.drain`), then other updates being
    handled (UPDATE_GRACE), then closes: within `webhook_shutdown_bound`."""
    assert settings.webhook_url is not None and settings.webhook_secret is not None
    app = await build_app(settings)
    bot = build_bot(settings, app.metrics)
    dp = build_dispatcher(app)
    secret = settings.webhook_secret.get_secret_value()
    web_app, _ = build_webhook_app(
        dp, bot, secret, grace=UPDATE_GRACE, path=webhook_path(settings.webhook_url),
        # /metrics, /healthz and /readyz on the webhook port (the orchestrator's probes).
        extra_routes=lambda web_app: add_probe_routes(web_app, app),
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT) if handle_signals else ()
    for signum in signals:
        loop.add_signal_handler(signum, stopping.set)
    host, port = settings.webhook_host_port
    probes = None
    try:
        if settings.metrics_listen:  # also where polling mode serves them (one config)
            probes = await start_probe_server(app, settings.metrics_listen)
        async with serving(web_app, host, port, shutdown_timeout=CONNECTIONS_GRACE):
            # Every replica sets the same webhook: harmless, and whichever starts first
            # makes Telegram deliver again after a redeploy.
            try:
                await bot.set_webhook(settings.webhook_url, secret_token=secret,
                                      allowed_updates=dp.resolve_used_update_types(),
                                      drop_pending_updates=False)
            except TelegramBadRequest as exc:
                raise ConfigError(f"Telegram refused WEBHOOK_URL: {exc.message}") from None
            log.info("taking webhook deliveries on %s:%d", host, port)
            await stopping.wait()
            log.info("stopping: no new updates; letting answers finish")
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
        if probes is not None:
            await stop_probe_server(probes)
        await bot.session.close()
        await app.aclose()


async def run_console_mode(settings: Settings) -> None:
    """`chatmux console`, or `chatmux run` without a token: the same bot, in the terminal."""
    from bot.console import run_console
    from bot.firstrun import first_run_guide

    app = await build_app(settings)
    dp = build_dispatcher(app)

    async def guide(lang: str) -> Text | None:
        report = await app.first_run.report()
        if report.any_reachable:
            return None
        return first_run_guide(report, lang_of(lang), settings.models_file, app.first_run.timeout)

    try:
        await run_console(dp, notice=guide)
    finally:
        await app.aclose()


__all__ = ["App", "build_app", "build_bot", "build_dispatcher", "run_polling", "run_webhook",
           "shutdown_bound", "webhook_shutdown_bound"]
