# /system, /persona, /settings и /model в группах (bot/handlers/personas.py, settings.py).

cmd_system = Показать или задать системный промпт
cmd_persona = Выбрать персону для модели
cmd_settings = Температура и длина ответа
chat_admins_only = Это могут менять только администраторы чата.
model_set_chat = Теперь всем в этом чате отвечает: { $model }
system_custom =
    Собственный системный промпт этого чата ({ $length } символов):

    { $prompt }
system_persona =
    Включена персона «{ $persona }». Её системный промпт:

    { $prompt }
system_model =
    { $model } использует свой системный промпт по умолчанию:

    { $prompt }
system_none = Системного промпта нет: { $model } отвечает без него.
system_usage = /system <текст> задаёт свой (до { $limit } символов), /system reset возвращает промпт модели по умолчанию, /persona — выбрать готовый.
system_set = ✅ Системный промпт задан ({ $length } символов). Он действует со следующего ответа; /system reset отменит его.
system_reset = ✅ Снова действует системный промпт модели по умолчанию (персона снята).
system_too_long = ⚠️ В этом промпте { $length } символов, а можно не больше { $limit }. Ничего не изменено.
persona_gone_note = ⚠️ Выбранная персона ({ $persona }) больше недоступна, поэтому действует промпт модели по умолчанию.
persona_menu = Персона: { $current }. Выберите (она заменяет промпт, заданный через /system):
persona_none = Без персоны
persona_unavailable = Персон нет. /system <текст> задаёт собственный промпт.
persona_gone = Эта персона больше недоступна. /persona покажет актуальный список.
persona_set = Персона: { $persona }
persona_cleared = Без персоны: действует промпт модели по умолчанию.
settings_header = ⚙️ Настройки генерации для { $model }:
settings_temperature = 🌡 Температура: { $value } (у модели { $default }; { $min }–{ $max })
settings_max_tokens = 📏 Максимальная длина ответа: { $value } токенов (у модели { $default }; до { $limit })
settings_top_p = 🎯 top_p: { $value } (у модели { $default })
settings_server_default = как на сервере
settings_hint = Ниже температура — ответы точнее, выше — разнообразнее. Настройки действуют для всех моделей, в пределах каждой.
settings_reset_button = ↺ Сбросить к настройкам модели
settings_saved = Сохранено
settings_reset = Снова настройки модели
settings_out_of_range = ⚠️ { $model } принимает { $name } от { $min } до { $max }. Ничего не изменено.
settings_top_p_fixed = ⚠️ У { $model } top_p менять нельзя. Ничего не изменено.
settings_not_yours = Это чужие настройки. Отправьте /settings, чтобы открыть свои.
settings_needs_person = Настройки личные: чтобы их менять, пишите от своего имени.
