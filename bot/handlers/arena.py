"""/arena and the judging of battles: a vote reveals the models, then how much better."""

from __future__ import annotations

from datetime import timedelta

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message

from bot.answering import arena_header, display_text
from bot.filters import Inline
from bot.formatting import layout
from bot.handlers.callbacks import replace_markup
from bot.keyboards.arena import BattleStrength, BattleVote, battle_keyboard
from bot.observability.metrics import Metrics
from bot.streaming.delivery import edit_part, is_gone
from bot.streaming.views import answer_header
from bot.texts import t
from inference.registry import ModelRegistry
from storage.models import Battle, User
from storage.models.feedback import STRENGTHS, WINNERS
from storage.repositories.conversations import ConversationRepository
from storage.repositories.feedback import BattleVoteRefused, FeedbackRepository
from storage.repositories.users import UserRepository

# A battle vote (and its strength) can be changed for this long.
CHANGE_WINDOW = timedelta(minutes=5)


def arena_on(user: User, registry: ModelRegistry) -> bool:
    """Whether the user's questions get battles. Never for a chat writing on its own behalf:
    only the asker judges a battle, and a chat is nobody in particular."""
    if user.is_chat:
        return False
    return user.arena_mode if user.arena_mode is not None else registry.arena_default


async def toggle_arena(message: Message, db_user: User, lang: str, users: UserRepository,
                       registry: ModelRegistry) -> None:
    if db_user.is_chat:
        await message.answer(t("arena_needs_person", lang), parse_mode=None)
        return
    enable = not arena_on(db_user, registry)
    if enable and len(registry.arena_models()) < 2:
        await message.answer(t("arena_unavailable", lang), parse_mode=None)
        return
    await users.set_arena_mode(db_user.id, enable)
    text = (t("arena_on", lang) if enable
            else t("arena_off", lang, model=registry.spec(db_user.model_id).title))
    await message.answer(text, parse_mode=None)


async def _battle_under(query: CallbackQuery, battle_id: int, chat_row_id: int, lang: str,
                        feedback: FeedbackRepository, conversations: ConversationRepository,
                        *, valid: bool) -> Battle | None:
    """The battle whose buttons were pressed, if the payload is `valid` and the buttons really
    sit under its answer B here; otherwise an error toast and None."""
    message = query.message
    battle = await feedback.battle_in_chat(battle_id, chat_row_id) if valid else None
    if battle is None or not isinstance(message, Message):
        await query.answer(t("stale_button", lang), show_alert=True)
        return None
    parts = await conversations.deliveries(battle.answer_b_id)
    if not parts or parts[-1].tg_message_id != message.message_id:
        await query.answer(t("stale_button", lang), show_alert=True)
        return None
    return battle


async def _reveal(bot: Bot, chat_id: int, battle: Battle, lang: str,
                  conversations: ConversationRepository, registry: ModelRegistry) -> None:
    """Name the models in the first part of each answer (keeping B's buttons current)."""
    keyboard = battle_keyboard(battle.id, lang, battle.winner, battle.strength)
    for side, answer_id, model_id in (("A", battle.answer_a_id, battle.model_a),
                                      ("B", battle.answer_b_id, battle.model_b)):
        answer = await conversations.get_message(answer_id)
        parts = await conversations.deliveries(answer_id)
        if answer is None or not parts:
            continue
        rendered = layout(  # as it was delivered (see Answerer._deliver)
            display_text(answer.content, answer.status, answer.finish_reason, lang),
            answer_header(arena_header(side, lang, registry.title(model_id)),
                          answer.reasoning, lang),
        ).parts
        markup = keyboard if side == "B" and len(parts) == 1 else None
        try:
            await edit_part(bot, chat_id, parts[0].tg_message_id, rendered[0],
                            reply_markup=markup)
        except TelegramBadRequest as exc:
            if not is_gone(exc):
                raise
            continue  # someone deleted that answer; the other one is still revealed
        if side == "B" and len(parts) > 1:
            await replace_markup(bot, chat_id, parts[-1].tg_message_id, keyboard)


async def _refused(query: CallbackQuery, exc: BattleVoteRefused, lang: str) -> None:
    key = "battle_final" if str(exc) == "final" else "battle_not_yours"
    await query.answer(t(key, lang), show_alert=True)


async def vote_battle(query: CallbackQuery, callback_data: BattleVote, bot: Bot, db_user: User,
                      chat_row_id: int, lang: str, feedback: FeedbackRepository,
                      conversations: ConversationRepository, registry: ModelRegistry,
                      metrics: Metrics) -> None:
    battle = await _battle_under(query, callback_data.battle_id, chat_row_id, lang, feedback,
                                 conversations, valid=callback_data.winner in WINNERS)
    if battle is None:
        return
    try:
        battle, changed = await feedback.vote_battle(
            battle.id, db_user.id, callback_data.winner, CHANGE_WINDOW
        )
    except BattleVoteRefused as exc:
        await _refused(query, exc, lang)
        return
    if changed:  # pressing the same side again is no new judgement
        metrics.vote(f"arena_{callback_data.winner}")  # one of WINNERS (checked above)
    await query.answer(t("battle_voted", lang, a=registry.title(battle.model_a),
                         b=registry.title(battle.model_b)))
    if changed:
        await _reveal(bot, query.message.chat.id, battle, lang, conversations, registry)  # type: ignore[union-attr]


async def battle_strength(query: CallbackQuery, callback_data: BattleStrength, bot: Bot,
                          db_user: User, chat_row_id: int, lang: str,
                          feedback: FeedbackRepository,
                          conversations: ConversationRepository, metrics: Metrics) -> None:
    battle = await _battle_under(query, callback_data.battle_id, chat_row_id, lang, feedback,
                                 conversations, valid=callback_data.strength in STRENGTHS)
    if battle is None:
        return
    try:
        battle = await feedback.set_battle_strength(
            battle.id, db_user.id, callback_data.strength, CHANGE_WINDOW
        )
    except BattleVoteRefused as exc:
        await _refused(query, exc, lang)
        return
    metrics.vote("arena_strength")
    await query.answer(t("battle_strength_saved", lang,
                         strength=t(f"strength_{callback_data.strength}", lang)))
    message = query.message
    await replace_markup(bot, message.chat.id, message.message_id,  # type: ignore[union-attr]
                         battle_keyboard(battle.id, lang, battle.winner, battle.strength))


def build_router() -> Router:
    router = Router(name="arena")
    router.message.register(toggle_arena, Command("arena"))
    router.callback_query.register(vote_battle, BattleVote.filter(), Inline(F.message))
    router.callback_query.register(battle_strength, BattleStrength.filter(),
                                   Inline(F.message))
    return router
