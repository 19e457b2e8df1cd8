"""User-facing strings in the languages chatmux speaks (English, Russian)."""

from __future__ import annotations

from typing import Final

DEFAULT_LANG: Final = "en"

TEXTS: Final[dict[str, dict[str, str]]] = {
    "start": {
        "en": (
            "Hi, {name}! I'm chatmux: one chat, many language models.\n\n"
            "Write to me and the current model ({model}) answers, streaming as it thinks. "
            "Pick another model with /model, start over with /new, see all commands with /help."
        ),
        "ru": (
            "Привет, {name}! Я chatmux: один чат, много языковых моделей.\n\n"
            "Напишите мне — ответит текущая модель ({model}), прямо по ходу генерации. "
            "Другая модель — /model, новый разговор — /new, все команды — /help."
        ),
    },
    "help": {
        "en": (
            "Commands:\n"
            "/model — choose the model that answers you\n"
            "/new — start a new conversation (the model forgets this one)\n"
            "/help — this message\n\n"
            "In groups, mention me or reply to my message."
        ),
        "ru": (
            "Команды:\n"
            "/model — выбрать модель, которая вам отвечает\n"
            "/new — начать новый разговор (модель забудет этот)\n"
            "/help — эта справка\n\n"
            "В группах упомяните меня или ответьте на моё сообщение."
        ),
    },
    "cmd_start": {"en": "Start the bot", "ru": "Запустить бота"},
    "cmd_help": {"en": "What I can do", "ru": "Что я умею"},
    "cmd_model": {"en": "Choose the model", "ru": "Выбрать модель"},
    "cmd_new": {"en": "Start a new conversation", "ru": "Новый разговор"},
    "model_menu": {
        "en": "Current model: {model}. Choose who answers you:",
        "ru": "Текущая модель: {model}. Выберите, кто будет отвечать:",
    },
    "model_set": {"en": "Now answering: {model}", "ru": "Теперь отвечает: {model}"},
    "model_gone": {
        "en": "That model is no longer available.",
        "ru": "Эта модель больше недоступна.",
    },
    "new_conversation": {
        "en": "New conversation started. {model} remembers nothing from before.",
        "ru": "Начат новый разговор. {model} не помнит ничего из прошлого.",
    },
    "unknown_command": {
        "en": "I don't know that command. See /help.",
        "ru": "Я не знаю такой команды. Список команд: /help",
    },
    "not_text": {
        "en": "I can only read text for now — please write your question in words.",
        "ru": "Пока я понимаю только текст — напишите вопрос словами.",
    },
    "empty": {
        "en": "Your message is empty — write something for me to answer.",
        "ru": "Сообщение пустое — напишите, на что ответить.",
    },
    "busy": {
        "en": "I'm still answering your previous message — try again in a moment.",
        "ru": "Я ещё отвечаю на предыдущее сообщение — попробуйте чуть позже.",
    },
    "err_unavailable": {
        "en": "⚠️ {model} is not reachable right now. Try again later or pick another one: /model",
        "ru": "⚠️ {model} сейчас недоступна. Попробуйте позже или выберите другую: /model",
    },
    "err_timeout": {
        "en": "⚠️ {model} took too long to answer. Try again or pick another model: /model",
        "ru": "⚠️ {model} отвечает слишком долго. Попробуйте ещё раз или выберите другую: /model",
    },
    "err_rate_limited": {
        "en": "⚠️ {model} is overloaded right now. Please try again in a minute.",
        "ru": "⚠️ {model} сейчас перегружена. Попробуйте через минуту.",
    },
    "err_context_too_long": {
        "en": "⚠️ This is too long for {model}. Shorten the message or start over with /new.",
        "ru": "⚠️ Это слишком длинно для {model}. Сократите сообщение или начните заново: /new",
    },
    "err_bad_request": {
        "en": "⚠️ {model} refused the request. Try rephrasing, or pick another model: /model",
        "ru": "⚠️ {model} отклонила запрос. Переформулируйте или выберите другую модель: /model",
    },
    "err_stream_error": {
        "en": "⚠️ {model} failed while answering. Please try again.",
        "ru": "⚠️ {model} сломалась во время ответа. Попробуйте ещё раз.",
    },
    "err_internal": {
        "en": "⚠️ Something went wrong on my side. Please try again.",
        "ru": "⚠️ Что-то пошло не так с моей стороны. Попробуйте ещё раз.",
    },
    "answer_cut": {
        "en": "⚠️ The answer was cut off: the model failed mid-way.",
        "ru": "⚠️ Ответ оборвался: модель сломалась посередине.",
    },
    "answer_stopped": {"en": "⏹ Stopped.", "ru": "⏹ Остановлено."},
    "answer_length": {
        "en": "… (the model reached its length limit)",
        "ru": "… (модель достигла предела длины ответа)",
    },
}


def lang_of(language_code: str | None) -> str:
    """Telegram's `language_code` → one of the languages we have strings for."""
    code = (language_code or "").split("-")[0].lower()
    if code in {"ru", "uk", "be", "kk"}:
        return "ru"
    return DEFAULT_LANG


def t(key: str, lang: str, **values: object) -> str:
    variants = TEXTS[key]
    template = variants.get(lang) or variants[DEFAULT_LANG]
    return template.format(**values) if values else template
