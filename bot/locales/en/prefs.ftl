# /system, /persona, /settings and a group's /model (bot/handlers/personas.py, settings.py).

cmd_system = Show or set the system prompt
cmd_persona = Choose a persona for the model
cmd_settings = Temperature and answer length
chat_admins_only = Only this chat's admins can change that.
model_set_chat = Now answering everyone in this chat: { $model }
system_custom =
    This chat's own system prompt ({ $length } characters):

    { $prompt }
system_persona =
    Persona «{ $persona }» is on. Its system prompt:

    { $prompt }
system_model =
    { $model } uses its default system prompt:

    { $prompt }
system_none = No system prompt: { $model } answers without one.
system_usage = /system <text> sets your own (up to { $limit } characters), /system reset goes back to the model's default, /persona picks a ready-made one.
system_set = ✅ System prompt set ({ $length } characters). It applies from the next answer; /system reset undoes it.
system_reset = ✅ Back to the model's default system prompt (and no persona).
system_too_long = ⚠️ That prompt is { $length } characters long; the limit is { $limit }. Nothing was changed.
persona_gone_note = ⚠️ The persona you chose ({ $persona }) is no longer available, so the model's default prompt applies.
persona_menu = Persona: { $current }. Choose one (it replaces a prompt set with /system):
persona_none = No persona
persona_unavailable = No personas are available. /system <text> sets a prompt of your own.
persona_gone = That persona is no longer available. Send /persona for the current list.
persona_set = Persona: { $persona }
persona_cleared = No persona: the model's default prompt applies.
settings_header = ⚙️ Generation settings for { $model }:
settings_temperature = 🌡 Temperature: { $value } (model default { $default }; { $min }–{ $max })
settings_max_tokens = 📏 Max answer length: { $value } tokens (model default { $default }; up to { $limit })
settings_top_p = 🎯 top_p: { $value } (model default { $default })
settings_server_default = server default
settings_hint = Lower temperature: more focused answers; higher: more varied. Your settings apply to every model, within each model's limits.
settings_reset_button = ↺ Reset to the model's defaults
settings_saved = Saved
settings_reset = Back to the model's defaults
settings_out_of_range = ⚠️ { $model } takes { $name } from { $min } to { $max }. Nothing was changed.
settings_top_p_fixed = ⚠️ { $model } does not let you change top_p. Nothing was changed.
settings_not_yours = These are someone else's settings. Send /settings for your own.
settings_needs_person = Settings are personal: write as yourself to change them.
