"""What may go into a dump: model export policies, users' consent, forgotten messages.

Everything is loaded once per dump (the consent sets, the stored model overrides); each
message then gets a small bit mask, computed once, that rows OR together as their turns are
read (see `Forest.turn`). Licences are bits of the same mask, so a row's licences cost no
more than its flags.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.exports.options import ExportOptions, ModelPolicy
from storage.models import ModelOverride, User

FORGOTTEN = 1  # a message blanked by "forget me" (origin 'forgotten')
NO_CONSENT = 2  # written or judged by a user who has not consented
RESTRICTED = 4  # an answer of a model whose terms keep it out of dumps (or an unknown model)
IMAGE = 8  # a message with images (rows with one are out unless include_images)
FLAGS = FORGOTTEN | NO_CONSENT | RESTRICTED | IMAGE
_LICENCE_SHIFT = 4
NOT_MODELS = frozenset({"edited", "forgotten"})  # assistant turns no model wrote (now)
# What a model without `data_license` contributes to a row's `licenses`.
UNKNOWN_LICENSE = "unknown"
# Why a row is left out, checked in this order (a row is counted once, under the first).
REASONS = (("forgotten", FORGOTTEN), ("no_consent", NO_CONSENT),
           ("restricted_model", RESTRICTED), ("images", IMAGE))


def consent_filter(mode: str) -> Any:
    """The user_account rows whose data may be exported in consent `mode`."""
    if mode == "opt_in":
        return User.data_consent.is_(True)
    return sa.or_(User.data_consent.is_(None), User.data_consent.is_(True))


class RowPolicy:
    """The per-dump view of who consented and what each model allows."""

    def __init__(self, models: Mapping[str, ModelPolicy], *, unknown_restricted: bool,
                 refused: set[int] | None = None, allowed: set[int] | None = None) -> None:
        self.models = dict(models)
        self.unknown_restricted = unknown_restricted
        # opt_in: only `allowed` said yes; opt_out: `refused` said no.
        self.users = allowed if allowed is not None else refused or set()
        self.listed_ok = allowed is not None
        self.model_marks: dict[str | None, int] = {}
        self._licence_bits: dict[str, int] = {}
        self.licence_lists: dict[int, list[str]] = {}  # by row mark, see `licences`

    def consented(self, user_id: int | None) -> bool:
        """Whether a user's messages and judgements may be in rows (None: nobody's)."""
        return user_id is None or (user_id in self.users) is self.listed_ok

    def _licence_bit(self, licence: str) -> int:
        bit = self._licence_bits.get(licence)
        if bit is None:
            bit = self._licence_bits[licence] = 1 << (_LICENCE_SHIFT + len(self._licence_bits))
        return bit

    def model_mark(self, model_id: str | None) -> int:
        """RESTRICTED (or not) and the licence bit of an answer by `model_id`."""
        mark = self.model_marks.get(model_id)
        if mark is None:
            policy = self.models.get(model_id) if model_id is not None else None
            if policy is None:
                restricted = self.unknown_restricted
                licence = UNKNOWN_LICENSE
            else:
                restricted = not policy.exportable
                licence = policy.data_license or UNKNOWN_LICENSE
            mark = (RESTRICTED if restricted else 0) | self._licence_bit(licence)
            self.model_marks[model_id] = mark
        return mark

    def message_mark(self, role: str, origin: str, model_id: str | None,
                     author_id: int | None) -> int:
        """A message's own mark, without images (computed once per message and batch)."""
        mark = 0
        if role == "assistant" and origin not in NOT_MODELS:
            mark = self.model_marks.get(model_id) or self.model_mark(model_id)
        elif origin == "forgotten":
            mark = FORGOTTEN
        return mark if self.consented(author_id) else mark | NO_CONSENT

    def licences(self, mark: int) -> list[str]:
        """The sorted distinct licences in a row's mark (one shared list per mark: callers
        may look `licence_lists` up first)."""
        cached = self.licence_lists.get(mark)
        if cached is None:
            cached = self.licence_lists[mark] = sorted(
                name for name, bit in self._licence_bits.items() if mark & bit)
        return cached

    def used_licences(self) -> set[str]:
        """Every licence some row was given."""
        return {name for names in self.licence_lists.values() for name in names}

    def reason(self, mark: int, include_restricted: bool, include_images: bool) -> str | None:
        """Why a row with `mark` is left out (a key of ExportResult.removed), or None."""
        kept = (RESTRICTED if include_restricted else 0) | (IMAGE if include_images else 0)
        for name, flag in REASONS:
            if mark & flag & ~kept:
                return name
        return None


def policy_from_spec(spec: Mapping[str, Any], file: ModelPolicy | None = None) -> ModelPolicy:
    """A model override's stored catalogue entry → its export policy. A field the entry
    lacks (stored before these fields existed) keeps the file's value."""
    file = file or ModelPolicy()
    licence = spec.get("data_license", file.data_license)
    return ModelPolicy(exportable=spec.get("exportable", file.exportable) is not False,
                       data_license=str(licence) if licence else None)


async def load_policy(connection: AsyncConnection, options: ExportOptions) -> RowPolicy:
    """The consent sets and the model policies (options' file entries, then the stored
    overrides: a model added in chat, also after /rmmodel, keeps the policy it was added
    with) for one dump."""
    models = dict(options.model_policies or {})
    overrides = await connection.execute(
        sa.select(ModelOverride.model_id, ModelOverride.spec))
    for model_id, spec in overrides:
        if isinstance(spec, dict):
            models[model_id] = policy_from_spec(spec, models.get(model_id))
    users = sa.select(User.id)
    if options.data_consent == "opt_in":
        allowed = set((await connection.scalars(users.where(User.data_consent.is_(True)))).all())
        return RowPolicy(models, unknown_restricted=options.model_policies is not None,
                         allowed=allowed)
    refused = set((await connection.scalars(users.where(User.data_consent.is_(False)))).all())
    return RowPolicy(models, unknown_restricted=options.model_policies is not None,
                     refused=refused)
