"""Synthetic but realistic chatmux data: users, conversations, arena battles and judgements.

For demos, the leaderboard, and the export benchmark (`chatmux demo-data --battles N`). Rows
go into the storage models' tables in bulk (Postgres: binary COPY; SQLite: executemany
INSERTs), one transaction per batch of about two thousand battles, the next batch being built
in a worker thread meanwhile, so memory stays flat and a million battles take minutes. Ids are
drawn from the database first (Postgres: the tables' sequences, safe next to a running bot;
SQLite: max(id) under the write lock), so rows can point at each other without a round trip
per row.

What is written, per `battles`:
- arena conversations of 1–4 turns; each turn is a user prompt with two sibling assistant
  answers (origin "arena") and a Battle between two distinct models. Models have hidden
  Bradley–Terry ratings and the winner is drawn so that E[outcome for A] is exactly
  1 / (1 + 10^((rating_b − rating_a) / 400)), counting "tie" and "both_bad" as half a win,
  so `storage.leaderboard` recovers the ratings. About 10% stay unjudged, about 5% are not
  anonymous. The next turn continues from the winner (A on a tie), as in the bot.
- about a quarter as many ordinary turns with the user's model, some with 👍/👎 votes, some
  regenerated (a sibling with origin "regenerated"; one of the pair got 👍, the other 👎), some
  improved by the user (an "edited" sibling and an AnswerEdit row).
Texts are templated English and Russian: explanations with Markdown, code blocks, tables,
poems, translations, and letters with fake e-mail addresses and phone numbers (for PII
scrubbing demos). Telegram ids are 13-digit numbers, above any id Telegram has issued.
Content is a function of `seed` alone; timestamps end at `until`.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import json
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.models import AnswerEdit, Battle, Chat, Conversation, Message, User, Vote

_T = TypeVar("_T")

CHAT_TURNS_PER_BATTLE = 0.25  # ordinary (non-arena) turns written per battle
BATCH_BATTLES = 2000  # battles per transaction
WRITERS = 2  # concurrent batch transactions on Postgres
CHUNK_ROWS = 5000  # rows per executemany
FAKE_TELEGRAM_IDS = (9_000_000_000_000, 9_999_999_999_999)
TURN_WEIGHTS = (0.45, 0.3, 0.15, 0.1)  # P(1..4 turns in a conversation)
UNJUDGED = 0.1
NAMED = 0.05  # battles whose models were shown before the vote
VOTE, REGENERATE, EDIT = 0.35, 0.08, 0.04  # per ordinary turn

# id -> (served model, true rating, system prompt, params, ttft ms, ms per token)
DEFAULT_MODELS: dict[str, tuple[str, float, str | None, dict[str, Any], int, float]] = {
    "gpt-4o": ("gpt-4o-2024-08-06", 1300.0, None, {"temperature": 0.7}, 420, 9.0),
    "claude-sonnet": (
        "claude-3-5-sonnet-20241022", 1220.0, "You are a helpful assistant.",
        {"temperature": 0.7, "max_tokens": 4096}, 650, 12.0,
    ),
    "llama-70b": (
        "meta-llama/Llama-3.1-70B-Instruct", 1140.0, "You are a helpful assistant.",
        {"temperature": 0.6, "top_p": 0.9}, 300, 22.0,
    ),
    "qwen-72b": ("Qwen/Qwen2.5-72B-Instruct", 1060.0, None, {"temperature": 0.7}, 280, 20.0),
    "mistral-large": (
        "mistralai/Mistral-Large-Instruct-2411", 980.0, None,
        {"temperature": 0.3, "max_tokens": 2048}, 350, 18.0,
    ),
    "gemma-27b": (
        "google/gemma-2-27b-it", 900.0, "Answer concisely.", {"temperature": 0.8}, 180, 14.0,
    ),
    "llama-8b": (
        "meta-llama/Llama-3.1-8B-Instruct", 820.0, "You are a helpful assistant.",
        {"temperature": 0.7}, 90, 7.0,
    ),
    "phi-mini": ("microsoft/Phi-3.5-mini-instruct", 740.0, None, {"temperature": 0.5}, 60, 5.0),
}


@dataclass(frozen=True, slots=True)
class DemoSummary:
    """Rows written, and the hidden ratings the battle outcomes were drawn from."""

    users: int
    chats: int
    conversations: int
    messages: int
    battles: int
    judged_battles: int
    chat_turns: int
    votes: int
    regenerated: int
    edits: int
    true_ratings: dict[str, float]


async def generate_demo_data(
    sessionmaker: async_sessionmaker,
    *,
    battles: int,
    seed: int = 0,
    users: int | None = None,
    models: list[str] | None = None,
    progress: Callable[[int], None] | None = None,
    until: datetime | None = None,
    days: float = 90.0,
) -> DemoSummary:
    """Write `battles` arena battles and the rest of a realistic history; see the module doc.

    `users` defaults to about 5·√battles (at most 5000). `models` defaults to
    `DEFAULT_MODELS`; given models get true ratings from strongest (first) to weakest, 600
    points apart in all. `progress` is called after each committed batch with the number of
    battles stored so far. Timestamps spread over the `days` before `until`
    (default: now).
    """
    if battles < 0:
        raise ValueError("battles must be >= 0")
    rng = random.Random(seed)
    roster = _roster(models, rng)
    n_users = users if users is not None else min(5000, max(20, round(5 * math.sqrt(battles))))
    if n_users < 1:
        raise ValueError("users must be >= 1")
    end = until or datetime.now(UTC)
    start, span = end.timestamp() - days * 86400, days * 86400
    writer = _Writer(sessionmaker)
    people = await writer.add_people(_people(rng, n_users, roster), rng, start)
    gen = _Generator(rng, roster, people, start, span, battles,
                     round(battles * CHAT_TURNS_PER_BATTLE))

    async def produce() -> _Batch | None:
        """The next batch, built in a worker thread while earlier ones are written."""
        return await asyncio.to_thread(gen.batch, BATCH_BATTLES) if gen.remaining else None

    # Postgres spends most of the time in foreign-key checks and index updates, so two
    # batches go in at once on two connections (ids are taken in batch order beforehand).
    # SQLite has one writer: batches go in one after the other, ids taken under its lock.
    parallel = WRITERS if writer.dialect == "postgresql" else 1
    writing: set[asyncio.Future[int]] = set()
    done = 0

    async def settle(limit: int) -> None:
        """Wait until at most `limit` writes are in flight; report progress, raise failures."""
        nonlocal done
        while len(writing) > limit:
            finished, _ = await asyncio.wait(writing, return_when=asyncio.FIRST_COMPLETED)
            for future in finished:
                writing.discard(future)
                done += future.result()
                if progress is not None:
                    progress(done)

    following: asyncio.Future[_Batch | None] | None = None
    try:
        batch = await produce()
        while batch is not None:
            following = asyncio.ensure_future(produce())
            if parallel > 1:
                await writer.number(batch)
            writing.add(asyncio.ensure_future(writer.write(batch)))
            await settle(parallel - 1)
            batch = await following
        await settle(0)
    except BaseException:
        for future in [*writing, *([following] if following else [])]:
            future.cancel()
        await asyncio.gather(*writing, *([following] if following else []),
                             return_exceptions=True)
        raise
    await writer.reopen_latest([p.chat_id for p in people])
    await writer.analyze()
    return DemoSummary(
        users=len(people), chats=len(people), conversations=writer.conversations,
        messages=writer.messages, battles=battles, judged_battles=gen.judged,
        chat_turns=gen.chat_turns_done, votes=writer.votes, regenerated=gen.regenerated,
        edits=writer.edits, true_ratings={m.id: m.rating for m in roster},
    )


# --- models and people ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Model:
    id: str
    served: str
    rating: float
    system_prompt: str | None
    params: dict[str, Any]
    ttft_ms: int
    ms_per_token: float


def _roster(models: list[str] | None, rng: random.Random) -> list[_Model]:
    if models is None:
        return [_Model(k, *v) for k, v in DEFAULT_MODELS.items()]
    if len(models) < 2 or len(set(models)) != len(models):
        raise ValueError("models must name at least two distinct models")
    if any(not m or len(m) > 40 for m in models):
        raise ValueError("model ids must have 1 to 40 characters")
    step = 600.0 / (len(models) - 1)
    return [
        _Model(m, m, round(1300.0 - i * step, 1),
               rng.choice((None, "You are a helpful assistant.")),
               {"temperature": rng.choice((0.2, 0.5, 0.7, 1.0))},
               rng.randrange(60, 700), rng.uniform(5.0, 25.0))
        for i, m in enumerate(models)
    ]


@dataclass(slots=True)
class _Person:
    telegram_id: int
    lang: str  # the language its texts are in: "en" or "ru"
    language_code: str | None
    username: str | None
    first_name: str
    model_id: str | None
    arena_mode: bool | None
    id: int = 0
    chat_id: int = 0


def _people(rng: random.Random, n: int, roster: Sequence[_Model]) -> list[_Person]:
    people = []
    for _ in range(n):
        code = rng.choices(("en", "ru", "uk", "de", "es", None), (45, 35, 5, 5, 4, 6))[0]
        lang = "ru" if code in ("ru", "uk") else "en"
        name = rng.choice(RU_NAMES if lang == "ru" else EN_NAMES)
        username = (f"{rng.choice(HANDLE_A)}_{rng.choice(HANDLE_B)}{rng.randrange(100)}"
                    if rng.random() < 0.7 else None)
        model = rng.choice(roster).id if rng.random() < 0.6 else None
        arena = rng.choice((True, None, None)) if rng.random() < 0.5 else None
        people.append(_Person(0, lang, code, username, name, model, arena))
    return people


# --- generation (pure Python, no I/O) ----------------------------------------------------
@dataclass(slots=True)
class _Batch:
    """One transaction's rows. Ids of conversations and messages are batch-local indexes
    until the writer swaps in ids taken from the database."""

    conversations: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    battles: list[dict[str, Any]] = field(default_factory=list)
    votes: list[dict[str, Any]] = field(default_factory=list)
    edits: list[dict[str, Any]] = field(default_factory=list)
    heads: list[tuple[int, int]] = field(default_factory=list)  # (conversation, message)
    numbered: bool = False  # ids swapped in


class _Generator:
    def __init__(self, rng: random.Random, roster: list[_Model], people: list[_Person],
                 start: float, span: float, battles: int, chat_turns: int) -> None:
        self.rng, self.roster, self.people = rng, roster, people
        self.by_id = {m.id: m for m in roster}
        self.start, self.span = start, span
        self.battles_left, self.chat_left = battles, chat_turns
        self.total = max(1, battles + chat_turns)
        self.judged = self.regenerated = self.chat_turns_done = 0
        # A few people do most of the talking (Zipf-like activity, exponent 0.7).
        weights = [1.0 / (k + 1) ** 0.7 for k in range(len(people))]
        rng.shuffle(weights)
        self.activity = list(itertools.accumulate(weights))
        self.text = _Texts(rng)

    @property
    def remaining(self) -> int:
        return self.battles_left + self.chat_left

    def batch(self, battles: int) -> _Batch:
        """Conversations until about `battles` battles (and their share of ordinary turns)."""
        b = _Batch()
        budget = battles * (1 + CHAT_TURNS_PER_BATTLE)
        turns = 0
        while self.remaining and turns < budget:
            turns += self._conversation(b)
        return b

    def _person(self) -> _Person:
        x = self.rng.random() * self.activity[-1]
        return self.people[min(bisect.bisect(self.activity, x), len(self.people) - 1)]

    def _conversation(self, b: _Batch) -> int:
        rng = self.rng
        arena = rng.random() * self.remaining < self.battles_left
        left = self.battles_left if arena else self.chat_left
        turns = min(left, rng.choices((1, 2, 3, 4), TURN_WEIGHTS)[0])
        done = self.total - self.remaining
        t = self.start + self.span * done / self.total + rng.uniform(0, 60)
        person = self._person()
        conv = len(b.conversations)
        row = {"id": conv, "chat_id": person.chat_id, "started_by_id": person.id,
               "head_message_id": None, "closed_at": None, "created_at": _at(t)}
        b.conversations.append(row)
        ctx = _Context(b, conv, person)
        for _ in range(turns):
            t = self._battle(ctx, t) if arena else self._chat_turn(ctx, t)
            t += rng.uniform(20, 600)  # the user reads, then asks again
        if arena:
            self.battles_left -= turns
        else:
            self.chat_left -= turns
            self.chat_turns_done += turns
        row["closed_at"] = _at(t + rng.uniform(60, 86400))
        if ctx.head is not None:
            b.heads.append((conv, ctx.head))
        return turns

    def _prompt(self, ctx: _Context, t: float) -> tuple[int, str, str]:
        """Store the user's next message; returns its index, text and topic kind."""
        kind, text = self.text.question(ctx.person.lang)
        index = _message(ctx, role="user", parent=ctx.head, author=ctx.person.id,
                         content=text, at=t)
        ctx.path_chars += len(text)
        return index, text, kind

    def _answer(self, ctx: _Context, parent: int, model: _Model, kind: str, prompt: str,
                t: float, origin: str) -> tuple[int, str, float]:
        """An assistant answer under `parent`; returns its index, text and when it finished."""
        rng = self.rng
        text = self.text.answer(ctx.person.lang, kind, prompt, model)
        completion = max(1, len(text) // 4)
        prompt_tokens = (ctx.path_chars + len(model.system_prompt or "")) // 4 + 8
        ttft = int(model.ttft_ms * rng.lognormvariate(0, 0.35))
        total = ttft + int(completion * model.ms_per_token * rng.uniform(0.8, 1.3))
        done = t + total / 1000
        index = _message(
            ctx, role="assistant", parent=parent, origin=origin, content=text, at=done,
            model_id=model.id, served_model=model.served, system_prompt=model.system_prompt,
            params=model.params, prompt_tokens=prompt_tokens, completion_tokens=completion,
            ttft_ms=ttft, total_ms=total, finish_reason="stop",
        )
        return index, text, done

    def _battle(self, ctx: _Context, t: float) -> float:
        rng = self.rng
        prompt, text, kind = self._prompt(ctx, t)
        a, b = rng.sample(self.roster, 2)
        answer_a, text_a, done_a = self._answer(ctx, prompt, a, kind, text, t, "arena")
        answer_b, _, done_b = self._answer(ctx, prompt, b, kind, text, t, "arena")
        created = max(done_a, done_b)
        p = 1.0 / (1.0 + 10.0 ** ((b.rating - a.rating) / 400.0))
        winner = strength = voted_at = None
        if rng.random() >= UNJUDGED:
            # Ties and "both bad" take half their mass from each side: E[outcome] stays p.
            tie = 0.4 * min(p, 1.0 - p)
            x = rng.random()
            if x < tie:
                winner = "both_bad" if rng.random() < 0.3 else "tie"
            else:
                winner = "a" if x - tie < p - tie / 2 else "b"
            if winner in ("a", "b") and rng.random() < 0.4:
                gap = abs(a.rating - b.rating)
                strength = rng.choices(
                    ("much_better", "better", "slightly_better", "about_same"),
                    (gap / 200 + 0.3, 1.0, 1.0, 0.4),
                )[0]
            voted_at = created + rng.uniform(5, 180)
            self.judged += 1
        ctx.batch.battles.append({
            "chat_id": ctx.person.chat_id, "user_id": ctx.person.id, "prompt_id": prompt,
            "answer_a_id": answer_a, "answer_b_id": answer_b, "model_a": a.id,
            "model_b": b.id, "anonymous": rng.random() >= NAMED, "winner": winner,
            "strength": strength, "voted_at": _at(voted_at) if voted_at else None,
            "created_at": _at(created),
        })
        ctx.head = answer_b if winner == "b" else answer_a
        ctx.path_chars += len(text_a)  # close enough for B's continuation too
        return voted_at or created

    def _chat_turn(self, ctx: _Context, t: float) -> float:
        rng = self.rng
        prompt, text, kind = self._prompt(ctx, t)
        model = self.by_id.get(ctx.person.model_id or "", self.roster[0])
        answer, answer_text, done = self._answer(ctx, prompt, model, kind, text, t, "original")
        ctx.head = answer
        x = rng.random()
        if x < REGENERATE:
            # 🔄 (or 🔀 another model): the new sibling becomes the head; one of the two got
            # 👍 and the other 👎, usually in favour of the newer one.
            other = model if rng.random() < 0.7 else rng.choice(self.roster)
            again, answer_text, later = self._answer(ctx, prompt, other, kind, text,
                                                     done + rng.uniform(3, 60), "regenerated")
            liked = again if rng.random() < 0.75 else answer
            disliked = answer if liked == again else again
            _vote(ctx, disliked, -1, later + rng.uniform(2, 30))
            _vote(ctx, liked, 1, later + rng.uniform(2, 30))
            ctx.head, done = again, later
            self.regenerated += 1
        elif x < REGENERATE + EDIT:
            # ✏️: the user's own version, an "edited" sibling, continues the conversation.
            at = done + rng.uniform(30, 400)
            edited = _message(
                ctx, role="assistant", parent=prompt, origin="edited", author=ctx.person.id,
                content=self.text.edit(ctx.person.lang, answer_text), at=at, model_id=model.id,
                served_model=model.served, system_prompt=model.system_prompt,
                params=model.params,
            )
            ctx.batch.edits.append({"original_id": answer, "edited_id": edited,
                                    "user_id": ctx.person.id, "chat_id": ctx.person.chat_id,
                                    "created_at": _at(at)})
            if rng.random() < 0.4:
                _vote(ctx, answer, -1, done + rng.uniform(2, 30))
            ctx.head, done = edited, at
        elif x < REGENERATE + EDIT + VOTE:
            p_like = 0.35 + 0.55 / (1.0 + 10.0 ** ((1000.0 - model.rating) / 400.0))
            _vote(ctx, answer, 1 if rng.random() < p_like else -1, done + rng.uniform(2, 120))
        ctx.path_chars += len(answer_text)
        return done


@dataclass(slots=True)
class _Context:
    """The conversation being written."""

    batch: _Batch
    conversation: int
    person: _Person
    head: int | None = None
    path_chars: int = 0


_EMPTY_ANSWER: dict[str, Any] = {
    "model_id": None, "served_model": None, "system_prompt": None, "params": None,
    "prompt_tokens": None, "completion_tokens": None, "ttft_ms": None, "total_ms": None,
    "finish_reason": None,
}


def _message(ctx: _Context, *, role: str, parent: int | None, content: str, at: float,
             origin: str = "original", author: int | None = None, **answer: Any) -> int:
    messages = ctx.batch.messages
    index = len(messages)
    messages.append({
        "id": index, "conversation_id": ctx.conversation, "parent_id": parent, "role": role,
        "origin": origin, "author_id": author, "content": content, "status": "complete",
        "error_kind": None, **_EMPTY_ANSWER, **answer, "created_at": _at(at),
    })
    return index


def _vote(ctx: _Context, message: int, value: int, at: float) -> None:
    ctx.batch.votes.append({"message_id": message, "user_id": ctx.person.id,
                            "chat_id": ctx.person.chat_id, "value": value,
                            "created_at": _at(at), "updated_at": _at(at)})


def _at(t: float) -> datetime:
    return datetime.fromtimestamp(round(t, 3), UTC)


# --- writing -------------------------------------------------------------------------------
class _Writer:
    """Inserts batches in their own transactions, with ids taken from the database."""

    def __init__(self, sessionmaker: async_sessionmaker) -> None:
        self.sessionmaker = sessionmaker
        self.conversations = self.messages = self.votes = self.edits = 0
        self.dialect = ""  # known once add_people has run
        self._sequences: dict[str, str] = {}

    async def add_people(self, people: list[_Person], rng: random.Random,
                         start: float) -> list[_Person]:
        """Insert users and their private chats; fills in their row ids."""
        async with self.sessionmaker.begin() as session:
            self.dialect = _dialect(session)
            await _begin(session)
            # Their own stream: a redraw after a clash does not shift the rest of the content.
            await self._fake_telegram_ids(session, people, random.Random(rng.getrandbits(64)))
            user_ids = await self._take_ids(session, User.__table__, len(people))
            chat_ids = await self._take_ids(session, Chat.__table__, len(people))
            users, chats = [], []
            for person, user_id, chat_id in zip(people, user_ids, chat_ids, strict=True):
                person.id, person.chat_id = user_id, chat_id
                at = _at(start - rng.uniform(0, 30 * 86400))
                users.append({"id": user_id, "telegram_id": person.telegram_id,
                              "username": person.username, "first_name": person.first_name,
                              "language_code": person.language_code,
                              "model_id": person.model_id, "arena_mode": person.arena_mode,
                              "created_at": at, "updated_at": at})
                chats.append({"id": chat_id, "telegram_id": person.telegram_id,
                              "type": "private", "title": None, "created_at": at})
            await _insert(session, User.__table__, users)
            await _insert(session, Chat.__table__, chats)
        return people

    async def _fake_telegram_ids(self, session: AsyncSession, people: list[_Person],
                                 rng: random.Random) -> None:
        """Distinct fake ids, none already used by a user or a chat in this database."""
        taken: set[int] = set()
        pending = list(people)
        while pending:
            for person in pending:
                person.telegram_id = rng.randint(*FAKE_TELEGRAM_IDS)
            ids = [p.telegram_id for p in pending]
            for table in (User.__table__, Chat.__table__):
                for chunk in _chunks(ids, 1000):
                    found = await session.scalars(
                        sa.select(table.c.telegram_id).where(table.c.telegram_id.in_(chunk))
                    )
                    taken.update(found)
            clash = []
            for person in pending:
                if person.telegram_id in taken:
                    clash.append(person)
                taken.add(person.telegram_id)
            pending = clash

    async def number(self, batch: _Batch) -> None:
        """Postgres: take the batch's ids in a short session of its own (nextval is not
        transactional), in batch order, so batches can then be written concurrently."""
        async with self.sessionmaker() as session:
            conv_ids = await self._take_ids(session, Conversation.__table__,
                                            len(batch.conversations))
            msg_ids = await self._take_ids(session, Message.__table__, len(batch.messages))
        _renumber(batch, conv_ids, msg_ids)

    async def write(self, batch: _Batch) -> int:
        """Insert the batch in one transaction; returns its number of battles."""
        async with self.sessionmaker.begin() as session:
            await _begin(session)
            if not batch.numbered:
                conv_ids = await self._take_ids(session, Conversation.__table__,
                                                len(batch.conversations))
                msg_ids = await self._take_ids(session, Message.__table__, len(batch.messages))
                _renumber(batch, conv_ids, msg_ids)
            await _insert(session, Conversation.__table__, batch.conversations)
            await _insert(session, Message.__table__, batch.messages)
            await _insert(session, Battle.__table__, batch.battles)
            await _insert(session, Vote.__table__, batch.votes)
            await _insert(session, AnswerEdit.__table__, batch.edits)
            await self._set_heads(session, batch.heads)
        self.conversations += len(batch.conversations)
        self.messages += len(batch.messages)
        self.votes += len(batch.votes)
        self.edits += len(batch.edits)
        return len(batch.battles)

    async def _set_heads(self, session: AsyncSession, heads: list[tuple[int, int]]) -> None:
        """Conversation heads, set once their messages exist (the foreign keys are circular)."""
        table = Conversation.__table__
        if _dialect(session) == "postgresql":  # one UPDATE … FROM unnest(ids, heads) per chunk
            array = postgresql.ARRAY(sa.BigInteger)
            for chunk in _chunks(heads, CHUNK_ROWS):
                data = sa.func.unnest(
                    sa.bindparam("ids", [c for c, _ in chunk], type_=array),
                    sa.bindparam("heads", [m for _, m in chunk], type_=array),
                ).table_valued("cid", "head").render_derived()
                await session.execute(
                    sa.update(table).where(table.c.id == data.c.cid)
                    .values(head_message_id=data.c.head)
                )
            return
        stmt = (sa.update(table).where(table.c.id == sa.bindparam("cid"))
                .values(head_message_id=sa.bindparam("head")))
        for chunk in _chunks(heads, CHUNK_ROWS):
            await session.execute(stmt, [{"cid": c, "head": m} for c, m in chunk])

    async def reopen_latest(self, chat_ids: list[int]) -> None:
        """Each chat's newest conversation is the open one (everything is written closed)."""
        table = Conversation.__table__
        for chunk in _chunks(chat_ids, 1000):
            async with self.sessionmaker.begin() as session:
                newest = (sa.select(sa.func.max(table.c.id)).where(table.c.chat_id.in_(chunk))
                          .group_by(table.c.chat_id))
                await session.execute(
                    sa.update(table).where(table.c.id.in_(newest)).values(closed_at=None)
                )

    async def analyze(self) -> None:
        """Refresh the planner's statistics, as after any bulk load: until autovacuum gets to
        it, Postgres would plan queries on these tables as if they were empty."""
        async with self.sessionmaker.begin() as session:
            await session.execute(sa.text("ANALYZE"))

    async def _take_ids(self, session: AsyncSession, table: sa.Table, n: int) -> list[int]:
        """`n` fresh primary keys for `table`, ascending."""
        if n == 0:
            return []
        if _dialect(session) == "postgresql":
            if table.name not in self._sequences:
                self._sequences[table.name] = await session.scalar(
                    sa.select(sa.func.pg_get_serial_sequence(table.name, "id"))
                )
            # nextval is safe next to other writers; the values need not be contiguous.
            ids = await session.scalars(
                sa.select(sa.func.nextval(self._sequences[table.name]))
                .select_from(sa.func.generate_series(1, n))
            )
            return sorted(ids)
        # SQLite has one writer at a time, and _begin took the write lock: max(id) holds.
        top = await session.scalar(sa.select(sa.func.max(table.c.id))) or 0
        return list(range(top + 1, top + n + 1))


def _renumber(batch: _Batch, conv_ids: list[int], msg_ids: list[int]) -> None:
    """Swap the batch-local indexes for database ids."""
    for row in batch.conversations:
        row["id"] = conv_ids[row["id"]]
    for row in batch.messages:
        row["id"] = msg_ids[row["id"]]
        row["conversation_id"] = conv_ids[row["conversation_id"]]
        if row["parent_id"] is not None:
            row["parent_id"] = msg_ids[row["parent_id"]]
    for row in batch.battles:
        for key in ("prompt_id", "answer_a_id", "answer_b_id"):
            row[key] = msg_ids[row[key]]
    for row in batch.votes:
        row["message_id"] = msg_ids[row["message_id"]]
    for row in batch.edits:
        row["original_id"] = msg_ids[row["original_id"]]
        row["edited_id"] = msg_ids[row["edited_id"]]
    batch.heads = [(conv_ids[c], msg_ids[m]) for c, m in batch.heads]
    batch.numbered = True


async def _insert(session: AsyncSession, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Bulk INSERT (executemany) of `rows`; on Postgres a binary COPY, about twice as fast
    and without SQLAlchemy's per-row parameter processing, in the same transaction."""
    if not rows:
        return
    if _dialect(session) != "postgresql":
        for chunk in _chunks(rows, CHUNK_ROWS):
            await session.execute(sa.insert(table), chunk)
        return
    columns = [c for c in table.columns if c.name in rows[0]]
    names = [c.name for c in columns]
    # asyncpg, as SQLAlchemy sets it up, takes JSON as text; params dicts are shared, so each
    # distinct one is serialised once.
    as_json = [isinstance(c.type, sa.JSON) for c in columns]
    dumped: dict[int, str] = {}

    def value(v: Any, is_json: bool) -> Any:
        if not is_json or v is None:
            return v
        text = dumped.get(id(v))
        if text is None:
            text = dumped[id(v)] = json.dumps(v)
        return text

    conn = await session.connection()
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    for chunk in _chunks(rows, CHUNK_ROWS):
        if any(as_json):
            records = [tuple(value(row[n], j) for n, j in zip(names, as_json, strict=True))
                       for row in chunk]
        else:
            records = [tuple(row[n] for n in names) for row in chunk]
        await driver.copy_records_to_table(table.name, records=records, columns=names)


async def _begin(session: AsyncSession) -> None:
    """Start a batch's transaction. Postgres: demo rows can be rewritten, so commits need not
    wait for the WAL flush. SQLite: take the write lock now (a no-op UPDATE does), so the
    max(id) read next holds until the commit even with another writer around."""
    if _dialect(session) == "postgresql":
        await session.execute(sa.text("SET LOCAL synchronous_commit = off"))
    else:
        table = User.__table__
        await session.execute(sa.update(table).where(sa.false()).values(id=table.c.id))


def _dialect(session: AsyncSession) -> str:
    return session.bind.dialect.name


def _chunks(items: list[_T], size: int) -> list[list[_T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


# --- texts ------------------------------------------------------------------------------------
EN_NAMES = ("Alice", "Ben", "Chloe", "Daniel", "Emma", "Finn", "Grace", "Henry", "Isla", "Jack",
            "Kate", "Liam", "Mia", "Noah", "Olivia", "Paul", "Ruby", "Sam", "Tom", "Zoe")
RU_NAMES = ("Алексей", "Анна", "Борис", "Вера", "Дмитрий", "Екатерина", "Иван", "Ирина",
            "Кирилл", "Мария", "Никита", "Ольга", "Павел", "Светлана", "Сергей", "Татьяна")
SURNAMES = ("smith", "jones", "brown", "ivanov", "petrova", "sokolov", "miller", "kuznetsova")
HANDLE_A = ("quiet", "brave", "lazy", "cosmic", "sunny", "rusty", "tiny", "grumpy", "swift")
HANDLE_B = ("fox", "owl", "otter", "panda", "coder", "cat", "falcon", "walrus", "badger")

EN_TOPICS = (
    "binary search", "Python decorators", "the French Revolution", "photosynthesis",
    "compound interest", "black holes", "sourdough bread", "the CAP theorem", "Docker volumes",
    "intermittent fasting", "the Roman Empire", "quantum entanglement", "index funds",
    "TCP congestion control", "climate change", "marathon training", "stoicism",
    "vector databases", "git rebase", "jet lag", "electric cars", "the Silk Road",
    "attention in transformers", "houseplants", "public speaking", "SQL joins", "sleep hygiene",
    "the Pythagorean theorem",
)
RU_TOPICS = (
    "бинарный поиск", "декораторы в Python", "Французская революция", "фотосинтез",
    "сложные проценты", "чёрные дыры", "хлеб на закваске", "теорема CAP", "тома Docker",
    "интервальное голодание", "Римская империя", "квантовая запутанность", "индексные фонды",
    "сборка мусора в Java", "изменение климата", "подготовка к марафону", "стоицизм",
    "векторные базы данных", "git rebase", "реформы Петра I", "электромобили",
    "Великий шёлковый путь", "механизм внимания в трансформерах", "комнатные растения",
    "публичные выступления", "JOIN в SQL", "гигиена сна", "теорема Пифагора",
)
EN_QUESTIONS = (
    "How does {topic} work?",
    "Explain {topic} like I'm {audience}.",
    "What are the pros and cons of {topic}?",
    "Give me {n} practical tips about {topic}.",
    "Summarize {topic} in two sentences.",
    "I'm preparing a talk on {topic}. What should I cover?",
    "what's the most common misconception about {topic}",
    "Is it worth learning about {topic} in 2026?",
)
RU_QUESTIONS = (
    "Что такое {topic}? Объясни простыми словами.",
    "Объясни тему «{topic}» так, чтобы понял {audience}.",
    "Какие плюсы и минусы у темы «{topic}»?",
    "Дай несколько практических советов по теме «{topic}».",
    "Перескажи тему «{topic}» в двух предложениях.",
    "Готовлю доклад на тему «{topic}». Что стоит в него включить?",
    "какое самое частое заблуждение про {topic}",
    "Стоит ли сейчас разбираться в теме «{topic}»?",
)
EN_AUDIENCE = ("five", "a new colleague", "a high-school student", "my grandmother")
RU_AUDIENCE = ("пятиклассник", "новый коллега", "школьник", "моя бабушка")
EN_POINTS = (
    "start from the simplest case and build up from there",
    "the details depend on the context, but the principle stays the same",
    "most mistakes come from skipping this step",
    "measure first, then decide what to change",
    "it is a trade-off between speed and reliability",
    "small, regular steps beat rare big efforts",
    "the historical context explains a lot of the current design",
    "write down your assumptions and check them one by one",
    "there is no single right answer; it depends on your goals",
    "the key quantity grows much faster than most people expect",
)
RU_POINTS = (
    "начните с простого случая и усложняйте постепенно",
    "детали зависят от контекста, но принцип один и тот же",
    "большинство ошибок возникает, когда пропускают этот шаг",
    "сначала измерьте, потом решайте, что менять",
    "это компромисс между скоростью и надёжностью",
    "маленькие регулярные шаги лучше редких больших усилий",
    "исторический контекст многое объясняет",
    "запишите свои допущения и проверьте их по одному",
    "единственно верного ответа нет: всё зависит от ваших целей",
    "ключевая величина растёт гораздо быстрее, чем обычно ожидают",
)
EN_LABELS = ("Core idea", "Why it matters", "Common pitfall", "Example", "Rule of thumb",
             "In practice")
RU_LABELS = ("Суть", "Почему это важно", "Частая ошибка", "Пример", "Практическое правило",
             "На практике")
EN_OPENERS = ("Great question: {topic} is easier than it looks.", "Sure, here's {topic} in short:",
              "**{topic}** in a nutshell:", "Here's a simple explanation of {topic}.", "")
RU_OPENERS = ("Хороший вопрос! Тема «{topic}» проще, чем кажется.", "Если коротко про «{topic}»:",
              "**{topic}** в двух словах:", "Объясню тему «{topic}» по шагам.", "")
EN_CLOSERS = ("Want me to go deeper into any of these points?",
              "Let me know if you'd like an example.", "Hope this helps!", "")
RU_CLOSERS = ("Хотите, разберу какой-то пункт подробнее?", "Могу привести пример.",
              "Надеюсь, это поможет!", "")
EN_EDIT_NOTES = ("Correction: the second point only holds for sorted input.",
                 "Note: this changed in 2024, the old advice is outdated.",
                 "Shorter version: just do the first step and measure.")
RU_EDIT_NOTES = ("Поправка: второй пункт верен только для отсортированных данных.",
                 "Важно: с 2024 года это изменилось, старый совет устарел.",
                 "Короче: сделайте первый шаг и измерьте результат.")
# (English task, Russian task, language, code)
CODE_TASKS = (
    ("reverses the words in a sentence", "переворачивает порядок слов в предложении", "python",
     "def reverse_words(sentence: str) -> str:\n    return \" \".join(reversed(sentence.split()))"),
    ("checks whether a string is a palindrome", "проверяет, является ли строка палиндромом",
     "python",
     "def is_palindrome(s: str) -> bool:\n    clean = [c.lower() for c in s if c.isalnum()]\n"
     "    return clean == clean[::-1]"),
    ("merges two sorted lists", "сливает два отсортированных списка", "python",
     "import heapq\n\n\ndef merge(a: list[int], b: list[int]) -> list[int]:\n"
     "    return list(heapq.merge(a, b))"),
    ("counts word frequencies in a file", "считает частоту слов в файле", "python",
     "from collections import Counter\n\n\ndef word_counts(path: str) -> Counter[str]:\n"
     "    with open(path, encoding=\"utf-8\") as f:\n"
     "        return Counter(f.read().lower().split())"),
    ("debounces another function", "откладывает вызов функции (debounce)", "javascript",
     "function debounce(fn, ms) {\n  let timer;\n  return (...args) => {\n"
     "    clearTimeout(timer);\n    timer = setTimeout(() => fn(...args), ms);\n  };\n}"),
    ("finds the top 5 customers by revenue", "находит 5 клиентов с наибольшей выручкой", "sql",
     "SELECT customer_id, SUM(amount) AS revenue\nFROM orders\nGROUP BY customer_id\n"
     "ORDER BY revenue DESC\nLIMIT 5;"),
    ("lists the ten largest files in a directory", "выводит десять самых больших файлов в папке",
     "bash", "du -ah \"${1:-.}\" | sort -rh | head -n 10"),
    ("computes Fibonacci numbers with memoization", "считает числа Фибоначчи с мемоизацией",
     "python",
     "from functools import cache\n\n\n@cache\ndef fib(n: int) -> int:\n"
     "    return n if n < 2 else fib(n - 1) + fib(n - 2)"),
)
ISSUES = (("a leaking kitchen tap", "течёт кран на кухне"),
          ("the broken heating", "не работает отопление"),
          ("returning my deposit", "возврат залога"))
SENTENCES = (("The weather is lovely today.", "Сегодня прекрасная погода."),
             ("Could you send me the report by Friday?", "Пришлите мне отчёт до пятницы?"),
             ("The train was late again.", "Поезд снова опоздал."),
             ("I have been learning to cook.", "Я учусь готовить."))


class _Texts:
    """Templated questions and answers; `kind` ties an answer to its question."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def question(self, lang: str) -> tuple[str, str]:
        rng, ru = self.rng, lang == "ru"
        kind = rng.choices(("explain", "code", "compare", "poem", "pii", "translate"),
                           (50, 18, 10, 7, 8, 7))[0]
        topics = RU_TOPICS if ru else EN_TOPICS
        if kind == "explain":
            template, topic = rng.choice(RU_QUESTIONS if ru else EN_QUESTIONS), rng.choice(topics)
            return f"explain:{topic}", template.format(
                topic=topic, n=rng.randint(3, 5),
                audience=rng.choice(RU_AUDIENCE if ru else EN_AUDIENCE),
            )
        if kind == "code":
            i = rng.randrange(len(CODE_TASKS))
            en, ru_task, language, _ = CODE_TASKS[i]
            text = (f"Напиши на {language} код, который {ru_task}." if ru
                    else f"Write {language} code that {en}.")
            return f"code:{i}", text
        if kind == "compare":
            x, y = rng.sample(topics, 2)
            text = f"Сравни «{x}» и «{y}»." if ru else f"Compare {x} and {y}."
            return f"compare:{x}|{y}", text
        if kind == "poem":
            topic = rng.choice(topics)
            text = (f"Напиши короткое стихотворение на тему «{topic}»." if ru
                    else f"Write a short poem about {topic}.")
            return f"poem:{topic}", text
        if kind == "pii":
            issue_en, issue_ru = rng.choice(ISSUES)
            name, email, phone = self._contact(lang)
            text = rng.choice((
                f"Напиши вежливое письмо арендодателю: {issue_ru}. Подпись: {name}, {email}, "
                f"тел. {phone}." if ru else
                f"Please write a polite email to my landlord about {issue_en}. "
                f"Sign it {name}, {email}, {phone}.",
                f"Вот мои контакты: {name}, {email}, {phone}. Оформи их как визитку." if ru else
                f"Here is my contact info: {name}, {email}, {phone}. Format it as a business card.",
            ))
            return f"pii:{name}|{email}|{phone}|{issue_ru if ru else issue_en}", text
        en, ru_sentence = rng.choice(SENTENCES)
        text = f"Переведи на английский: «{ru_sentence}»" if ru else (
            f"Translate into Russian: \"{en}\"")
        return f"translate:{ru_sentence if not ru else en}", text

    def _contact(self, lang: str) -> tuple[str, str, str]:
        rng = self.rng
        name = rng.choice(RU_NAMES if lang == "ru" else EN_NAMES)
        email = (f"{rng.choice(HANDLE_A)}.{rng.choice(SURNAMES)}{rng.randrange(10, 99)}"
                 f"@{rng.choice(('example.com', 'example.org', 'mail.example.net'))}")
        phone = (f"+7 9{rng.randrange(10, 99)} {rng.randrange(100, 999)}-{rng.randrange(10, 99)}-"
                 f"{rng.randrange(10, 99)}" if lang == "ru"
                 else f"+1 (555) 01{rng.randrange(10, 99)}")  # 555-01xx: fictional numbers
        return name, email, phone

    def answer(self, lang: str, kind: str, prompt: str, model: _Model) -> str:
        rng, ru = self.rng, lang == "ru"
        rich = rng.random() < 0.4 + model.rating / 3000  # stronger models format more
        head, _, arg = kind.partition(":")
        if head == "code":
            en, ru_task, language, code = CODE_TASKS[int(arg)]
            intro = rng.choice(("Вот решение:", "Например, так:") if ru
                               else ("Here's one way to do it:", "Sure:"))
            outro = (f"Функция {ru_task}; сложность линейная." if ru
                     else f"It {en} in linear time.") if rich else ""
            return f"{intro}\n\n```{language}\n{code}\n```\n\n{outro}".rstrip()
        if head == "compare":
            x, y = arg.split("|")
            points = RU_POINTS if ru else EN_POINTS
            rows = "\n".join(f"| {label} | {rng.choice(points)} | {rng.choice(points)} |"
                             for label in rng.sample(RU_LABELS if ru else EN_LABELS, 3))
            table = f"| | {x} | {y} |\n|---|---|---|\n{rows}"
            if not rich:
                return (f"{x} и {y} похожи, но {rng.choice(points)}." if ru
                        else f"{x} and {y} are similar, but {rng.choice(points)}.")
            closer = rng.choice(RU_CLOSERS if ru else EN_CLOSERS)
            return f"**{x}** vs **{y}**:\n\n{table}\n\n{closer}".rstrip()
        if head == "poem":
            if ru:
                return (f"О теме «{arg}» скажу без лишних слов:\n"
                        "в ней тишина и свет, и шум ветров,\n"
                        "и кто однажды в суть её проник,\n"
                        "тот понял больше, чем из сотни книг.")
            return (f"Of {arg} I sing on a quiet night,\n"
                    "a patient thing that slowly comes to light,\n"
                    "and those who stay to learn its gentle art\n"
                    "will carry something new within the heart.")
        if head == "pii":
            name, email, phone, issue = arg.split("|")
            if "визитк" in prompt or "business card" in prompt:
                return f"**{name}**\n✉️ {email}\n📞 {phone}"
            return (f"Тема: {issue}\n\nЗдравствуйте!\n\nПишу по поводу: {issue}. Прошу решить "
                    f"вопрос в ближайшее время.\n\nС уважением,\n{name}\n{email}\n{phone}"
                    if ru else
                    f"Subject: {issue.capitalize()}\n\nDear landlord,\n\nI am writing about "
                    f"{issue}. Could you please arrange a fix this week?\n\nBest regards,\n"
                    f"{name}\n{email}\n{phone}")
        if head == "translate":
            return (f"Перевод: «{arg}»" if ru else f"Here is the translation:\n\n> {arg}")
        # An explanation: an opener, some points (a Markdown list if rich), a closer.
        points = rng.sample(RU_POINTS if ru else EN_POINTS, rng.randint(2, 5))
        opener = rng.choice(RU_OPENERS if ru else EN_OPENERS).format(topic=arg)
        if rich:
            labels = rng.sample(RU_LABELS if ru else EN_LABELS, len(points))
            body = "\n".join(f"- **{lab}**: {p}" for lab, p in zip(labels, points, strict=True))
        else:
            body = " ".join(p[0].upper() + p[1:] + "." for p in points)
        closer = rng.choice(RU_CLOSERS if ru else EN_CLOSERS)
        return "\n\n".join(part for part in (opener, body, closer) if part)

    def edit(self, lang: str, original: str) -> str:
        """The user's improved answer: the original with a note, or only its first part."""
        note = self.rng.choice(RU_EDIT_NOTES if lang == "ru" else EN_EDIT_NOTES)
        first = original.split("\n\n")[0]
        return f"{first}\n\n{note}" if first != original and self.rng.random() < 0.5 else (
            f"{original}\n\n{note}")
