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
            "/arena — two anonymous models answer; you pick the better one\n"
            "/leaderboard — model ratings from arena votes\n"
            "/stats — your ratings so far\n"
            "/help — this message\n\n"
            "Under each answer: 👍/👎 rate it, 🔄 asks again, 🔀 asks another model, "
            "✏️ lets you write a better answer.\n\n"
            "In groups, mention me or reply to my message."
        ),
        "ru": (
            "Команды:\n"
            "/model — выбрать модель, которая вам отвечает\n"
            "/new — начать новый разговор (модель забудет этот)\n"
            "/arena — отвечают две анонимные модели, вы выбираете лучшую\n"
            "/leaderboard — рейтинг моделей по голосам на арене\n"
            "/stats — ваши оценки\n"
            "/help — эта справка\n\n"
            "Под каждым ответом: 👍/👎 — оценка, 🔄 — ответить заново, 🔀 — спросить другую "
            "модель, ✏️ — написать ответ лучше.\n\n"
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
    "back": {"en": "« Back", "ru": "« Назад"},
    "vote_up": {"en": "👍 Saved — thanks!", "ru": "👍 Сохранено — спасибо!"},
    "vote_down": {"en": "👎 Saved — thanks!", "ru": "👎 Сохранено — спасибо!"},
    "vote_removed": {"en": "Vote removed", "ru": "Оценка снята"},
    "vote_same": {"en": "Already saved", "ru": "Уже сохранено"},
    "stale_button": {
        "en": "This button is no longer valid.",
        "ru": "Эта кнопка больше не действует.",
    },
    "not_yours": {
        "en": "Only the person in this chat can do that.",
        "ru": "Это может сделать только собеседник бота в этом чате.",
    },
    "regenerating": {"en": "🔄 Writing another answer…", "ru": "🔄 Пишу другой ответ…"},
    "regen_same": {
        "en": "🔄 Already writing another answer",
        "ru": "🔄 Уже пишу другой ответ",
    },
    "regen_with": {"en": "🔀 Asking {model}…", "ru": "🔀 Спрашиваю {model}…"},
    "pick_regen_model": {"en": "Pick a model", "ru": "Выберите модель"},
    "edit_prompt": {
        "en": "✏️ Send me the improved answer as your next message (a reply to this one) "
              "within 10 minutes — it will count as better than the original. "
              "/cancel to stop.",
        "ru": "✏️ Пришлите улучшенный ответ следующим сообщением (ответом на это) в течение "
              "10 минут — он будет считаться лучше исходного. /cancel — отмена.",
    },
    "edit_placeholder": {"en": "The improved answer", "ru": "Улучшенный ответ"},
    "edit_saved": {
        "en": "✏️ Saved. Thanks — the conversation continues from your version.",
        "ru": "✏️ Сохранено. Спасибо — разговор продолжится с вашей версии.",
    },
    "edit_unchanged": {
        "en": "That is the same as the original. Send a changed version, or /cancel.",
        "ru": "Это совпадает с исходным ответом. Пришлите изменённый вариант или /cancel.",
    },
    "edit_invisible": {
        "en": "That shows nothing. Send the improved answer as text, or /cancel.",
        "ru": "В этом сообщении ничего не видно. Пришлите улучшенный ответ текстом или /cancel.",
    },
    "edit_not_text": {
        "en": "Please send the improved answer as text, or /cancel.",
        "ru": "Пришлите улучшенный ответ текстом или /cancel.",
    },
    "cancelled": {"en": "Cancelled.", "ru": "Отменено."},
    "nothing_to_cancel": {"en": "Nothing to cancel.", "ru": "Отменять нечего."},
    "arena_on": {
        "en": "⚔️ Arena mode is on: each question is answered by two anonymous models. "
              "Vote for the better answer to see who they were. /arena again turns it off.",
        "ru": "⚔️ Режим арены включён: на каждый вопрос ответят две анонимные модели. "
              "Проголосуйте за лучший ответ, чтобы узнать, кто это был. /arena — выключить.",
    },
    "arena_off": {
        "en": "Arena mode is off: {model} answers you again.",
        "ru": "Режим арены выключен: вам снова отвечает {model}.",
    },
    "arena_unavailable": {
        "en": "The arena needs at least two models, and only one is available now.",
        "ru": "Для арены нужны хотя бы две модели, а сейчас доступна только одна.",
    },
    "arena_side": {"en": "Model {side}", "ru": "Модель {side}"},
    "arena_revealed": {"en": "Model {side}: {model}", "ru": "Модель {side}: {model}"},
    "arena_side_failed": {
        "en": "Model {side} failed to answer, so this round is not a battle.",
        "ru": "Модель {side} не смогла ответить, так что этот раунд не засчитан.",
    },
    "winner_a": {"en": "🅰️ A is better", "ru": "🅰️ A лучше"},
    "winner_b": {"en": "🅱️ B is better", "ru": "🅱️ B лучше"},
    "winner_tie": {"en": "🤝 Tie", "ru": "🤝 Ничья"},
    "winner_both_bad": {"en": "👎 Both are bad", "ru": "👎 Оба плохи"},
    "strength_much_better": {"en": "Much better", "ru": "Намного лучше"},
    "strength_better": {"en": "Better", "ru": "Лучше"},
    "strength_slightly_better": {"en": "Slightly better", "ru": "Немного лучше"},
    "strength_about_same": {"en": "About the same", "ru": "Примерно одинаково"},
    "battle_voted": {
        "en": "Thanks! A was {a}, B was {b}.",
        "ru": "Спасибо! A — это {a}, B — {b}.",
    },
    "battle_strength_saved": {"en": "Saved: {strength}", "ru": "Сохранено: {strength}"},
    "arena_needs_person": {
        "en": "Arena battles are judged by the person who asked, so they are not available "
              "when writing on behalf of a chat.",
        "ru": "Поединки на арене оценивает тот, кто задал вопрос, поэтому они недоступны, "
              "когда вы пишете от имени чата.",
    },
    "battle_not_yours": {
        "en": "Only the person who asked can judge this battle.",
        "ru": "Оценить этот поединок может только тот, кто задал вопрос.",
    },
    "battle_final": {
        "en": "This vote is final now.",
        "ru": "Этот голос уже окончательный.",
    },
    "stats": {
        "en": "Your contribution so far:\n"
              "👍 {likes} and 👎 {dislikes} on answers\n"
              "✏️ {edits} improved answers\n"
              "⚔️ {battles} arena battles judged{favourite}\n\n"
              "Every judgement helps make the models better. Thank you!",
        "ru": "Ваш вклад:\n"
              "👍 {likes} и 👎 {dislikes} за ответы\n"
              "✏️ {edits} улучшенных ответов\n"
              "⚔️ {battles} оценённых поединков на арене{favourite}\n\n"
              "Каждая оценка помогает сделать модели лучше. Спасибо!",
    },
    "stats_favourite": {
        "en": "\n🏆 your arena favourite: {model}",
        "ru": "\n🏆 ваш фаворит на арене: {model}",
    },
    "cmd_arena": {
        "en": "Arena: two anonymous models per question",
        "ru": "Арена: две анонимные модели",
    },
    "cmd_stats": {"en": "Your ratings so far", "ru": "Ваши оценки"},
    "cmd_cancel": {"en": "Cancel the current action", "ru": "Отменить текущее действие"},
    "cmd_leaderboard": {"en": "Model ratings from arena votes", "ru": "Рейтинг моделей по арене"},
    "leaderboard_header": {
        "en": "🏆 Arena leaderboard: {models} models, {battles} judged anonymous battles.\n"
              "Ratings on the Elo scale (Bradley–Terry) with 95% intervals; "
              "a tie counts as half a win.",
        "ru": "🏆 Рейтинг арены: моделей — {models}, оценённых анонимных поединков — {battles}.\n"
              "Рейтинги по шкале Эло (Брэдли — Терри) с 95% интервалами; "
              "ничья — половина победы.",
    },
    "leaderboard_top": {
        "en": "The top {shown} of {models} models are shown.",
        "ru": "Показаны лучшие {shown} из {models} моделей.",
    },
    "leaderboard_caption": {
        "en": "Ratings with 95% intervals",
        "ru": "Рейтинги с 95% интервалами",
    },
    "leaderboard_empty": {
        "en": "No arena battles have been judged yet. Try /arena and vote for the better answer!",
        "ru": "На арене ещё нет оценённых поединков. Включите /arena и выберите лучший ответ!",
    },
    "leaderboard_failed": {
        "en": "⚠️ I couldn't build the leaderboard right now. Please try again later.",
        "ru": "⚠️ Не получилось построить рейтинг. Попробуйте позже.",
    },
    "model_retired": {
        "en": "{old} is no longer available, so {model} answers you now. /model to choose.",
        "ru": "{old} больше недоступна, теперь вам отвечает {model}. Выбрать другую: /model",
    },
    "fallback_note": {
        "en": "⚠️ {model} is unavailable right now; {fallback} answers instead.",
        "ru": "⚠️ {model} сейчас недоступна; вместо неё отвечает {fallback}.",
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
    "context_trimmed": {
        "en": "ℹ️ The oldest messages of this conversation no longer fit into the model's "
              "memory, so it answered without them. /new starts a fresh conversation.",
        "ru": "ℹ️ Самые ранние сообщения этого разговора больше не помещаются в память "
              "модели, и она ответила без них. /new начинает новый разговор.",
    },
    "busy_saved": {
        "en": "I'm still writing the previous answer. Your message is saved: I'll read it "
              "together with your next one.",
        "ru": "Я ещё пишу предыдущий ответ. Ваше сообщение сохранено: я прочту его вместе "
              "со следующим.",
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
    "err_model_not_served": {
        "en": "⚠️ {model} is not served by its server right now. Pick another model: /model",
        "ru": "⚠️ {model} сейчас не обслуживается своим сервером. Выберите другую модель: /model",
    },
    "err_stream_error": {
        "en": "⚠️ {model} failed while answering. Please try again.",
        "ru": "⚠️ {model} сломалась во время ответа. Попробуйте ещё раз.",
    },
    "err_empty": {
        "en": "⚠️ {model} returned an empty answer. Tap 🔄 to try again.",
        "ru": "⚠️ {model} вернула пустой ответ. Нажмите 🔄, чтобы попробовать ещё раз.",
    },
    "err_undelivered": {
        "en": "⚠️ I couldn't deliver the whole answer: Telegram did not accept it. "
              "Tap 🔄 for a new one.",
        "ru": "⚠️ Не удалось доставить ответ целиком: Telegram его не принял. "
              "Нажмите 🔄, чтобы получить новый.",
    },
    "err_internal": {
        "en": "⚠️ Something went wrong on my side. Please try again.",
        "ru": "⚠️ Что-то пошло не так с моей стороны. Попробуйте ещё раз.",
    },
    "answer_cut": {
        "en": "⚠️ The answer was cut off: the model failed mid-way.",
        "ru": "⚠️ Ответ оборвался: модель сломалась посередине.",
    },
    "answer_in_file": {
        "en": "📄 The answer is too long for a chat: the rest of it is in this file.",
        "ru": "📄 Ответ слишком длинный для чата: его продолжение — в этом файле.",
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
