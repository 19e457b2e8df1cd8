"""Where rows come from: battles, edits and votes, each streamed ordered by conversation.

Every source selects its judgements with `conversation_id` as the first column, ordered by it,
so a batch of whole conversations can be loaded with one query and turned into rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from storage.exports.options import (
    EDIT_MARGIN,
    MARGINS,
    UNKNOWN_STRENGTH_MARGIN,
    ExportOptions,
)
from storage.exports.policy import FLAGS, NO_CONSENT, RowPolicy, consent_filter
from storage.exports.tree import HUMAN, PARENT, Forest, utc
from storage.models import AnswerEdit, Battle, Message, User, Vote

Row = dict[str, Any]
Keyed = tuple[int, Row]


def _in_window(column: Any, options: ExportOptions) -> list[Any]:
    clauses = []
    if options.since is not None:
        clauses.append(column >= options.since)
    if options.until is not None:
        clauses.append(column < options.until)
    return clauses


def battle_query(options: ExportOptions) -> sa.Select:
    winners = ["a", "b"]
    if options.format in ("arena", "kto") and options.include_ties:
        winners += ["tie", "both_bad"]
    query = (
        sa.select(
            Message.conversation_id, Battle.id, Battle.user_id, Battle.prompt_id,
            Battle.answer_a_id, Battle.answer_b_id, Battle.model_a, Battle.model_b,
            Battle.anonymous, Battle.winner, Battle.strength, Battle.voted_at,
        )
        .join(Message, Message.id == Battle.prompt_id)
        .where(Battle.winner.in_(winners), *_in_window(Battle.voted_at, options))
        .order_by(Message.conversation_id, Battle.id)
    )
    if options.models is not None:
        query = query.where(Battle.model_a.in_(options.models),
                            Battle.model_b.in_(options.models))
    return query


def edit_query(options: ExportOptions) -> sa.Select:
    query = (
        sa.select(Message.conversation_id, AnswerEdit.id, AnswerEdit.original_id,
                  AnswerEdit.edited_id, AnswerEdit.created_at, AnswerEdit.user_id)
        .join(Message, Message.id == AnswerEdit.original_id)
        .where(*_in_window(AnswerEdit.created_at, options))
        .order_by(Message.conversation_id, AnswerEdit.id)
    )
    if options.models is not None:
        query = query.where(Message.model_id.in_(options.models))
    return query


def vote_query(options: ExportOptions) -> sa.Select:
    """Each voted answer once, with the sum of its votes (groups can vote several times).
    Votes of users who have not consented are not counted (see `excluded_votes_query`)."""
    query = (
        sa.select(Message.conversation_id, Vote.message_id, sa.func.sum(Vote.value),
                  sa.func.max(Vote.updated_at))
        .join(Message, Message.id == Vote.message_id)
        .where(*_in_window(Vote.updated_at, options),
               Vote.user_id.in_(sa.select(User.id).where(consent_filter(options.data_consent))))
        .group_by(Message.conversation_id, Vote.message_id)
        .order_by(Message.conversation_id, Vote.message_id)
    )
    if options.models is not None:
        query = query.where(Message.model_id.in_(options.models))
    return query


def excluded_votes_query(options: ExportOptions) -> sa.Select:
    """How many votes in the window the consent setting leaves out."""
    return sa.select(sa.func.count()).select_from(Vote).where(
        *_in_window(Vote.updated_at, options),
        Vote.user_id.not_in(sa.select(User.id).where(consent_filter(options.data_consent))))


QUERIES = {"arena": battle_query, "edit": edit_query, "likes": vote_query,
           "regenerate": vote_query}


class RowBuilder:
    """Turns one batch of judgements (whole conversations) into rows of one format."""

    def __init__(self, options: ExportOptions, policy: RowPolicy | None = None) -> None:
        self.o = options
        self.policy = policy or RowPolicy({}, unknown_restricted=False)
        self._hashes: dict[tuple[str, int], str] = {}
        # Rows left out, by reason (see storage/exports/policy.py REASONS).
        self.removed: dict[str, int] = {}

    def _hash(self, kind: str, row_id: int) -> str:
        """Salted hash of a user or conversation id, memoised (they repeat across rows);
        the memo is bounded by the number of users and conversations in one batch's reach."""
        key = (kind, row_id)
        value = self._hashes.get(key)
        if value is None:
            if len(self._hashes) > 100_000:
                self._hashes.clear()
            value = self._hashes[key] = self.o.anonymize(kind, row_id)
        return value

    def questions(self, source: str, batch: list[Any], forest: Forest) -> set[int]:
        """The ids of the questions whose language this batch's rows will report."""
        nodes = forest.nodes
        if source == "arena":
            return {b[3] for b in batch if b[3] in nodes}
        if source == "regenerate":  # only questions with a liked and a disliked answer
            signs: dict[int, set[bool]] = {}
            for _conv, message_id, net, _at in batch:
                node = nodes.get(message_id)
                if net and node is not None and node[PARENT] is not None:
                    signs.setdefault(node[PARENT], set()).add(net > 0)
            return {parent for parent, seen in signs.items() if len(seen) == 2}
        column = 2 if source == "edit" else 1  # the original answer; the voted answer
        ids = set()
        for judgement in batch:
            node = nodes.get(judgement[column])
            if node is not None and node[PARENT] is not None:
                ids.add(node[PARENT])
        return ids

    def rows(self, source: str, batch: list[Any], forest: Forest) -> Iterator[Keyed]:
        """(identity, row) pairs: rows with equal identities are exact duplicates. Rows whose
        dialog has an image are left out (counted) unless `include_images`: the formats are
        text, and there an image is only an "[image]" marker. So are rows with a forgotten
        message, a user who has not consented, or (unless `include_restricted`) an answer of
        a restricted model; each row gets its `licenses`."""
        policy, removed = self.policy, self.removed
        include_restricted, include_images = self.o.include_restricted, self.o.include_images
        licence_lists = policy.licence_lists
        forest.marks = forest.judge = 0
        for keyed in self._rows(source, batch, forest):
            mark = forest.marks | forest.judge
            forest.marks = 0
            if mark & FLAGS:
                reason = policy.reason(mark, include_restricted, include_images)
                if reason is not None:
                    removed[reason] = removed.get(reason, 0) + 1
                    continue
            licences = licence_lists.get(mark)
            keyed[1]["licenses"] = policy.licences(mark) if licences is None else licences
            yield keyed

    @property
    def image_rows_left_out(self) -> int:
        return self.removed.get("images", 0)

    def _rows(self, source: str, batch: list[Any], forest: Forest) -> Iterator[Keyed]:
        fmt = self.o.format
        consented = self.policy.consented
        if source == "arena":
            build = getattr(self, f"_battle_{fmt}")
            for b in batch:
                forest.judge = 0 if consented(b[2]) else NO_CONSENT  # battle.user_id
                yield from build(b, forest)
        elif source == "edit":
            build = getattr(self, f"_edit_{fmt}")
            for e in batch:
                forest.judge = 0 if consented(e[5]) else NO_CONSENT  # answer_edit.user_id
                yield from build(e, forest)
        elif source == "likes":
            yield from getattr(self, f"_likes_{fmt}")(batch, forest)
        else:
            yield from self._regenerate_dpo(batch, forest)

    # --- shared pieces ---------------------------------------------------------------------

    def _conversation(self, conversation_id: int) -> str:
        return self._hash("conversation", conversation_id)


    def _pair(self, forest: Forest, conversation_id: int, parent: int, chosen: int,
              rejected: int, *, chosen_model: str | None, rejected_model: str | None,
              source: str, strength: str | None, margin: float, at: datetime) -> Keyed:
        prompt = forest.prompt(parent, chosen, rejected)
        key = hash((_system(prompt), forest.chain(parent), forest.turn(chosen)["content"],
                    forest.turn(rejected)["content"]))
        return key, {
            "prompt": prompt,
            "chosen": [forest.turn(chosen)],
            "rejected": [forest.turn(rejected)],
            "chosen_model": chosen_model,
            "rejected_model": rejected_model,
            "source": source,
            "strength": strength,
            "margin": margin,
            "language": forest.language(parent),
            "conversation_id": self._conversation(conversation_id),
            "created_at": utc(at),
        }

    def _single(self, forest: Forest, conversation_id: int, answer: int, label: bool,
                model: str | None, source: str, at: datetime) -> Keyed:
        parent = forest.parent(answer)
        prompt = forest.prompt(parent, answer)
        return hash((_system(prompt), forest.chain(answer), label)), {
            "prompt": prompt,
            "completion": [forest.turn(answer)],
            "label": label,
            "model": model,
            "source": source,
            "language": forest.language(parent),
            "conversation_id": self._conversation(conversation_id),
            "created_at": utc(at),
        }

    # --- arena battles ---------------------------------------------------------------------

    def _battle_arena(self, b: Any, forest: Forest) -> Iterator[Row]:
        (_conv, battle_id, user_id, prompt_id, a_id, b_id, model_a, model_b, anonymous,
         winner, _strength, voted_at) = b
        if not (forest.complete(a_id) and forest.complete(b_id)):
            return
        dialog = forest.dialog(prompt_id)
        turn = [t["role"] for t in dialog].count("user")
        judge = "arena_user_" + self._hash("user", user_id)
        key = hash((judge, model_a, model_b, winner, forest.chain(a_id), forest.chain(b_id)))
        yield key, {
            "question_id": self.o.anonymize("battle", battle_id),
            "model_a": model_a,
            "model_b": model_b,
            "winner": {"a": "model_a", "b": "model_b", "tie": "tie",
                       "both_bad": "tie (bothbad)"}[winner],
            "judge": judge,
            "conversation_a": [*dialog, forest.turn(a_id)],
            "conversation_b": [*dialog, forest.turn(b_id)],
            "turn": turn,
            "anony": bool(anonymous),
            "language": forest.language(prompt_id),
            "tstamp": utc(voted_at).timestamp(),
        }

    def _battle_dpo(self, b: Any, forest: Forest) -> Iterator[Row]:
        (conv, _id, _user, prompt_id, a_id, b_id, model_a, model_b, _anon,
         winner, strength, voted_at) = b
        if not self.o.strength_ok(strength):
            return
        if not (forest.complete(a_id) and forest.complete(b_id)):
            return
        chosen, rejected = (a_id, b_id) if winner == "a" else (b_id, a_id)
        chosen_model, rejected_model = (model_a, model_b) if winner == "a" else (model_b, model_a)
        margin = MARGINS[strength] if strength else UNKNOWN_STRENGTH_MARGIN
        yield self._pair(forest, conv, prompt_id, chosen, rejected, chosen_model=chosen_model,
                         rejected_model=rejected_model, source="arena", strength=strength,
                         margin=margin, at=voted_at)

    def _battle_kto(self, b: Any, forest: Forest) -> Iterator[Row]:
        (conv, _id, _user, _prompt, a_id, b_id, model_a, model_b, _anon,
         winner, strength, voted_at) = b
        if winner in ("a", "b") and not self.o.strength_ok(strength):
            return
        labels = {"a": (True, False), "b": (False, True), "tie": (True, True),
                  "both_bad": (False, False)}[winner]
        for answer, model, label in ((a_id, model_a, labels[0]), (b_id, model_b, labels[1])):
            if forest.complete(answer):
                yield self._single(forest, conv, answer, label, model, "arena", voted_at)

    # --- edits -----------------------------------------------------------------------------

    def _edited_pair_ok(self, forest: Forest, original: int, edited: int) -> bool:
        if not (forest.complete(original) and edited in forest.nodes):
            return False
        text = forest.content(edited).strip()
        return bool(text) and text != forest.content(original).strip()

    def _edit_dpo(self, e: Any, forest: Forest) -> Iterator[Row]:
        conv, _id, original, edited, created_at, _user = e
        if not self._edited_pair_ok(forest, original, edited):
            return
        yield self._pair(forest, conv, forest.parent(original), edited, original,
                         chosen_model=HUMAN, rejected_model=forest.model(original),
                         source="edit", strength=None, margin=EDIT_MARGIN, at=created_at)

    def _edit_kto(self, e: Any, forest: Forest) -> Iterator[Row]:
        conv, _id, original, edited, created_at, _user = e
        if not self._edited_pair_ok(forest, original, edited):
            return
        yield self._single(forest, conv, edited, True, HUMAN, "edit", created_at)
        yield self._single(forest, conv, original, False, forest.model(original), "edit",
                           created_at)

    def _edit_sft(self, e: Any, forest: Forest) -> Iterator[Row]:
        conv, _id, original, edited, created_at, _user = e
        if not self._edited_pair_ok(forest, original, edited):
            return
        yield self._sft_row(forest, conv, edited, HUMAN, "edit", created_at)

    # --- votes -----------------------------------------------------------------------------

    def _likes_kto(self, batch: list[Any], forest: Forest) -> Iterator[Row]:
        for conv, message_id, net, at in batch:
            if net and forest.complete(message_id):
                yield self._single(forest, conv, message_id, net > 0,
                                   forest.model(message_id), "likes", at)

    def _regenerate_dpo(self, batch: list[Any], forest: Forest) -> Iterator[Row]:
        """Sibling answers to one prompt where one was liked (net) and another disliked."""
        by_parent: dict[tuple[int, int], tuple[list[Any], list[Any]]] = {}
        for conv, message_id, net, at in batch:
            if not net or not forest.complete(message_id):
                continue
            liked, disliked = by_parent.setdefault((conv, forest.parent(message_id)), ([], []))
            (liked if net > 0 else disliked).append((message_id, at))
        for (conv, parent), (liked, disliked) in by_parent.items():
            for good, good_at in liked:
                for bad, bad_at in disliked:
                    yield self._pair(
                        forest, conv, parent, good, bad,
                        chosen_model=forest.model(good), rejected_model=forest.model(bad),
                        source="regenerate",
                        strength=None, margin=UNKNOWN_STRENGTH_MARGIN, at=max(good_at, bad_at),
                    )

    def _sft_row(self, forest: Forest, conv: int, answer: int, model: str | None,
                 source: str, at: datetime) -> Keyed:
        parent = forest.parent(answer)
        messages = [*forest.prompt(parent, answer), forest.turn(answer)]
        return hash((_system(messages), forest.chain(answer))), {
            "messages": messages,
            "model": model,
            "source": source,
            "language": forest.language(parent),
            "conversation_id": self._conversation(conv),
            "created_at": utc(at),
        }

    def _likes_sft(self, batch: list[Any], forest: Forest) -> Iterator[Row]:
        """Liked answers with their context, unless a disliked answer is in that context;
        a liked answer inside a longer liked dialog is left to the longer one."""
        nets = {message_id: (net, conv, at) for conv, message_id, net, at in batch}
        liked = [m for m, (net, _, _) in nets.items() if net > 0 and forest.complete(m)]
        covered: set[int] = set()
        keep: list[int] = []
        for message_id in liked:
            path = forest.path(message_id)
            if any(nets.get(m, (0,))[0] < 0 for m in path):
                continue
            covered.update(m for m in path[:-1] if m in nets)
            keep.append(message_id)
        for message_id in keep:
            if message_id in covered:
                continue
            _, conv, at = nets[message_id]
            yield self._sft_row(forest, conv, message_id, forest.model(message_id), "likes", at)


def _system(messages: list[dict[str, str]]) -> str | None:
    """The system prompt a row's dialog starts with, if any (part of its identity)."""
    return messages[0]["content"] if messages and messages[0]["role"] == "system" else None
