"""Limits on what one user may ask for: a rate limit and per-model quotas; and bans.

- Rate limit: a token bucket per user (RATE_LIMIT_BURST tokens, RATE_LIMIT_PER_MINUTE refill;
  either 0 turns it off), taken by every message that would call a model: questions (text,
  photos, voice), 🔄/🔀 regenerations, "Answer the edited version". Over it, the message is
  neither stored nor answered: one line says when to try again (once: the messages after it,
  until then, are dropped without another line). Button presses that call no
  model (votes, menus) draw from their own bucket three times as large: a flood of them is
  bounded without ever getting in the way of normal voting.
- Quotas (the catalogue's `quota:` per model and tier): checked when a question is accepted,
  counted from the answers stored (see `storage.repositories.limits`). A refused question
  stays stored (nothing the user wrote is lost) but out of the conversation's history, like a
  photo that could not be read: the conversation stays where it was and no model is called.
  Questions already queued when the quota runs out are still answered: at most the queue's
  length (5) more than the quota.
- Admins (ADMIN_IDS) are exempt from both.
- Bans: banned users' updates stop in `bot.middlewares.limits` before any handler. Every
  process keeps the banned ids in memory, refreshed from the database every few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiogram.exceptions import TelegramAPIError
from aiogram.types import Message as TgMessage

from bot.quota_window import duration, window_end, window_start
from bot.settings import Settings
from bot.texts import t
from inference.catalogue import DEFAULT_TIER, ModelSpec, Quota
from inference.registry import ModelRegistry
from storage.models import User
from storage.repositories.conversations import Asked, ConversationRepository
from storage.repositories.limits import LimitsRepository
from storage.repositories.users import TelegramUser
from storage.shared_state import SharedState
from storage.token_bucket import BucketState, TokenBuckets

log = logging.getLogger(__name__)

# How often each process re-reads the banned users (a ban from another process applies
# within this many seconds; in the banning process at once).
BAN_REFRESH = 5.0
# Presses that call no model may come this many times faster than questions.
PRESS_FACTOR = 3


@dataclass(frozen=True, slots=True)
class QuotaStatus:
    spec: ModelSpec
    quota: Quota
    used: int
    resets_at: datetime

    @property
    def left(self) -> int:
        return max(0, self.quota.messages - self.used)


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a question may be answered: `refusal` is the line to send if not;
    `exhausted`: models out of quota for this user (kept out of an arena battle)."""

    refusal: str | None = None
    exhausted: tuple[str, ...] = field(default_factory=tuple)


class Limits:
    """One per process; handlers receive it from the Dispatcher as `limits`."""

    def __init__(self, settings: Settings, registry: ModelRegistry, repo: LimitsRepository,
                 buckets: TokenBuckets, state: SharedState,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.settings = settings
        self.state = state
        self.registry = registry
        self.repo = repo
        self.buckets = buckets
        self.clock = clock
        self.banned: frozenset[int] = frozenset()
        self._refresher: asyncio.Task[None] | None = None

    # --- who ------------------------------------------------------------------------
    def exempt(self, telegram_id: int | None) -> bool:
        return telegram_id is not None and telegram_id in self.settings.admin_ids

    def is_banned(self, telegram_id: int | None) -> bool:
        return (telegram_id is not None and telegram_id in self.banned
                and not self.exempt(telegram_id))

    # --- rate limit -----------------------------------------------------------------
    @property
    def rate_limited(self) -> bool:
        return self.settings.rate_limit_burst > 0 and self.settings.rate_limit_per_minute > 0

    def _bucket(self, press: bool) -> tuple[int, float]:
        factor = PRESS_FACTOR if press else 1
        return (self.settings.rate_limit_burst * factor,
                self.settings.rate_limit_per_minute * factor / 60)

    async def rate_refusal(self, telegram_id: int | None, lang: str) -> str | None:
        """Takes a token for a message that would call a model; if there was none, the line
        to send — said once until a token is back (a flood is not answered with a flood):
        "" for the messages after it."""
        if telegram_id is None or self.exempt(telegram_id) or not self.rate_limited:
            return None
        state = await self.buckets.take(f"ask:{telegram_id}", *self._bucket(False))
        if state.allowed:
            return None
        if not await self.state.claim(f"limit-told:{telegram_id}", state.wait):
            return ""
        return t("limit_rate", lang, reset=duration(state.wait, lang))

    async def press_refusal(self, telegram_id: int | None, lang: str) -> str | None:
        """The same for a button press (its own, larger bucket)."""
        if telegram_id is None or self.exempt(telegram_id) or not self.rate_limited:
            return None
        state = await self.buckets.take(f"press:{telegram_id}", *self._bucket(True))
        if state.allowed:
            return None
        return t("limit_presses", lang, reset=duration(state.wait, lang))

    async def rate_state(self, telegram_id: int) -> BucketState:
        return await self.buckets.peek(f"ask:{telegram_id}", *self._bucket(False))

    # --- quotas ---------------------------------------------------------------------
    async def statuses(self, user: User, specs: Iterable[ModelSpec]) -> list[QuotaStatus]:
        """The quota standing of `user` for each of `specs` that has a quota in their tier."""
        now = self.clock()
        # A tier the catalogue no longer lists is the default one, never "no limit".
        tier = user.tier if user.tier in self.registry.tiers else DEFAULT_TIER
        limited = [(s, q) for s in specs if (q := s.quota_for(tier)) is not None]
        used: dict[str, int] = {}
        for per in {q.per for _, q in limited}:
            ids = [s.id for s, q in limited if q.per == per]
            used |= await self.repo.answers_since(user.id, ids, window_start(now, per))
        return [QuotaStatus(s, q, used.get(s.id, 0), window_end(now, q.per))
                for s, q in limited]

    def refusal_for(self, status: QuotaStatus, lang: str) -> str:
        wait = (status.resets_at - self.clock()).total_seconds()
        return t("limit_quota", lang, model=status.spec.title, messages=status.quota.messages,
                 per=status.quota.per, reset=duration(wait, lang))

    async def verdict(self, user: User, model_id: str | None, lang: str, *,
                      arena: bool = False) -> Verdict:
        """Whether `user` may get an answer from `model_id` (None: the default); with
        `arena`, which arena models are out of quota. Costs no query unless a model
        concerned has a quota in the user's tier."""
        if self.exempt(user.telegram_id):
            return Verdict()
        spec = self.registry.spec(model_id)
        specs = {spec.id: spec}
        if arena:
            specs |= {m.id: m for m in self.registry.arena_models()}
        statuses = await self.statuses(user, specs.values())
        exhausted = tuple(s.spec.id for s in statuses if s.left <= 0)
        own = next((s for s in statuses if s.spec.id == spec.id and s.left <= 0), None)
        if own is not None and arena:  # a battle between models with quota left will do
            others = [m for m in self.registry.arena_models() if m.id not in exhausted]
            own = None if len(others) >= 2 else own
        return Verdict(self.refusal_for(own, lang) if own else None, exhausted)

    async def admit(self, user: User, model_id: str | None, lang: str) -> str | None:
        """Rate limit and quota for a model call asked with a button: the refusal, if any."""
        refusal = await self.rate_refusal(user.telegram_id, lang)
        if refusal == "":  # said already; a button's press is still answered
            state = await self.rate_state(user.telegram_id)
            wait = (1 - state.tokens) * 60 / self.settings.rate_limit_per_minute
            refusal = t("limit_rate", lang, reset=duration(wait, lang))
        if refusal is None:
            refusal = (await self.verdict(user, model_id, lang)).refusal
        return refusal

    # --- bans -----------------------------------------------------------------------
    async def refresh_bans(self) -> None:
        self.banned = await self.repo.banned_ids()

    async def start(self) -> None:
        """Read the banned users, then keep them fresh (other processes ban too)."""
        await self.refresh_bans()
        self._refresher = asyncio.create_task(self._refresh_forever())

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(BAN_REFRESH)
            try:
                await self.refresh_bans()
            except Exception:  # the database is down: keep the last list
                log.warning("could not refresh the banned users", exc_info=True)

    async def aclose(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None

    def banned_now(self, telegram_id: int, banned: bool) -> None:
        """This process applies a ban or unban at once."""
        self.banned = (self.banned | {telegram_id} if banned
                       else self.banned - {telegram_id})


async def _reply(message: TgMessage, text: str) -> None:
    with contextlib.suppress(TelegramAPIError):
        await message.reply(text, parse_mode=None)


async def over_rate(message: TgMessage, author: TelegramUser, lang: str,
                    limits: Limits) -> bool:
    """For a question not stored yet: whether its sender is over the rate limit (then they
    were told, and it is not kept: a flood writes nothing)."""
    refusal = await limits.rate_refusal(author.telegram_id, lang)
    if refusal:
        await _reply(message, refusal)
    return refusal is not None


async def over_quota(message: TgMessage, asked: Asked, model_id: str | None, arena: bool,
                     lang: str, conversations: ConversationRepository,
                     limits: Limits) -> Verdict | None:
    """For a question just stored: the verdict if it may be answered; None if its model's
    quota is used up (then the user was told, and the question left out of the
    conversation's history, as if never asked: it stays stored, unanswered)."""
    verdict = await limits.verdict(asked.user, model_id, lang, arena=arena)
    if verdict.refusal is None:
        return verdict
    await conversations.abandon(asked.question)
    await _reply(message, verdict.refusal)
    return None
