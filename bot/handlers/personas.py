"""/system and /persona: the system prompt of a chat (in a private chat, the user's own).

`/system` shows the prompt in force, `/system <text>` sets the chat's own, `/system reset` goes
back to the model's default; `/persona` picks one of the catalogue's personas. The chat's own
text and a persona exclude each other (see `bot.prefs`). In groups only chat admins change
them (`bot.chat_admins`); anyone may look.
"""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message

from bot.chat_admins import may_configure
from bot.cleaning import clean_text
from bot.filters import Inline
from bot.handlers.callbacks import refresh_menu
from bot.keyboards.personas import NO_PERSONA, PersonaChoice, persona_keyboard
from bot.prefs import SYSTEM_PROMPT_LIMIT, answering_model
from bot.texts import t
from bot.visible import is_blank
from inference.registry import ModelRegistry
from storage.models import User
from storage.repositories.users import ChatPrefs, UserRepository

# A prompt is shown up to this many UTF-16 units (a Telegram message holds 4096 of them; an
# emoji or a character outside the BMP takes two).
SHOWN_PROMPT = 3000
RESET_WORDS = frozenset({"reset", "default", "сброс"})


def _shown(prompt: str) -> str:
    units = 0
    for index, char in enumerate(prompt):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > SHOWN_PROMPT:
            return prompt[:index] + "…"
    return prompt


def gone_note(chat: ChatPrefs, registry: ModelRegistry, lang: str) -> str | None:
    """A line saying the chat's persona was removed from the catalogue, if it was."""
    if chat.persona_id and not chat.system_prompt and registry.persona(chat.persona_id) is None:
        return t("persona_gone_note", lang, persona=chat.persona_id)
    return None


def describe_prompt(chat: ChatPrefs, user: User, registry: ModelRegistry, lang: str) -> str:
    """What /system shows: the prompt in force for the chat's model, and how to change it."""
    spec = registry.spec(answering_model(chat, user, registry))
    persona = None if chat.system_prompt else registry.persona(chat.persona_id)
    if chat.system_prompt:
        lines = [t("system_custom", lang, length=len(chat.system_prompt),
                   prompt=_shown(chat.system_prompt))]
    elif persona is not None:
        lines = [t("system_persona", lang, persona=persona.title,
                   prompt=_shown(persona.system_prompt))]
    else:
        lines = [note] if (note := gone_note(chat, registry, lang)) else []
        lines.append(t("system_model", lang, model=spec.title, prompt=_shown(spec.system_prompt))
                     if spec.system_prompt else t("system_none", lang, model=spec.title))
    lines.append(t("system_usage", lang, limit=SYSTEM_PROMPT_LIMIT))
    return "\n\n".join(lines)


async def system_prompt(message: Message, command: CommandObject, bot: Bot, db_user: User,
                        chat_row_id: int, chat_prefs: ChatPrefs, lang: str,
                        registry: ModelRegistry, users: UserRepository) -> None:
    text = clean_text(command.args or "").strip()
    if is_blank(text):
        await message.answer(describe_prompt(chat_prefs, db_user, registry, lang),
                             parse_mode=None)
        return
    if not await may_configure(bot, message):
        await message.reply(t("chat_admins_only", lang), parse_mode=None)
        return
    if text.lower() in RESET_WORDS:
        await users.set_system_prompt(chat_row_id, None)
        await message.answer(t("system_reset", lang), parse_mode=None)
        return
    if len(text) > SYSTEM_PROMPT_LIMIT:
        await message.reply(t("system_too_long", lang, length=len(text),
                              limit=SYSTEM_PROMPT_LIMIT), parse_mode=None)
        return
    await users.set_system_prompt(chat_row_id, text)
    await message.answer(t("system_set", lang, length=len(text)), parse_mode=None)


def persona_menu(chat: ChatPrefs, registry: ModelRegistry, lang: str) -> str:
    current = None if chat.system_prompt else registry.persona(chat.persona_id)
    lines = [t("persona_menu", lang,
               current=current.title if current else t("persona_none", lang))]
    if note := gone_note(chat, registry, lang):
        lines.append(note)
    lines.append("\n".join(f"• {p.title}" + (f" — {p.description}" if p.description else "")
                           for p in registry.personas()))
    return "\n\n".join(lines)


def _current(chat: ChatPrefs) -> str | None:
    return None if chat.system_prompt else chat.persona_id


async def show_personas(message: Message, chat_prefs: ChatPrefs, lang: str,
                        registry: ModelRegistry) -> None:
    personas = registry.personas()
    if not personas:
        note = gone_note(chat_prefs, registry, lang)
        text = t("persona_unavailable", lang)
        await message.answer(f"{note}\n\n{text}" if note else text, parse_mode=None)
        return
    await message.answer(persona_menu(chat_prefs, registry, lang), parse_mode=None,
                         reply_markup=persona_keyboard(personas, _current(chat_prefs), lang))


async def choose_persona(query: CallbackQuery, callback_data: PersonaChoice, bot: Bot,
                         chat_row_id: int, chat_prefs: ChatPrefs, lang: str,
                         registry: ModelRegistry, users: UserRepository) -> None:
    if not await may_configure(bot, query):
        await query.answer(t("chat_admins_only", lang), show_alert=True)
        return
    if callback_data.persona_id == NO_PERSONA:
        await users.set_persona(chat_row_id, None)
        chosen = ChatPrefs(model_id=chat_prefs.model_id)
        await query.answer(t("persona_cleared", lang))
    else:
        persona = registry.persona(callback_data.persona_id)
        if persona is None:  # removed from the catalogue, or a forged button
            await query.answer(t("persona_gone", lang), show_alert=True)
            return
        await users.set_persona(chat_row_id, persona.id)
        chosen = ChatPrefs(persona_id=persona.id, model_id=chat_prefs.model_id)
        await query.answer(t("persona_set", lang, persona=persona.title))
    await refresh_menu(query, persona_menu(chosen, registry, lang),
                       persona_keyboard(registry.personas(), _current(chosen), lang))


def build_router() -> Router:
    router = Router(name="personas")
    router.message.register(system_prompt, Command("system"))
    router.message.register(show_personas, Command("persona"))
    router.callback_query.register(choose_persona, PersonaChoice.filter(), Inline(F.message))
    return router
