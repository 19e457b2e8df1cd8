# chatmux: what users read (Project Fluent syntax). Every language has the same keys;
# tests/unit/test_locales.py fails when one is missing. Each feature may add its own .ftl.

start =
    Hi, { $name }! I'm chatmux: one chat, many language models.

    Write to me and the current model ({ $model }) answers, streaming as it thinks. Pick another model with /model, start over with /new, see all commands with /help.
help =
    Commands:
    /model — choose the model that answers you
    /new — start a new conversation (the model forgets this one)
    /arena — two anonymous models answer; you pick the better one
    /leaderboard — model ratings from arena votes
    /stats — your ratings so far
    /system — show or set the system prompt; /persona — pick a persona
    /settings — temperature and answer length
    /lang — the language I speak
    /usage — what you have left (messages per model)
    /privacy — what I store about you, datasets, "forget me"
    /help — this message

    Under each answer: 👍/👎 rate it, 🔄 asks again, 🔀 asks another model, ✏️ lets you write a better answer.

    In groups, mention me or reply to my message. Only the group's admins change its model, system prompt and persona.
cmd_start = Start the bot
cmd_help = What I can do
cmd_model = Choose the model
cmd_new = Start a new conversation
model_menu = Current model: { $model }. Choose who answers you:
model_set = Now answering: { $model }
model_gone = That model is no longer available.
new_conversation = New conversation started. { $model } remembers nothing from before.
back = « Back
vote_up = 👍 Saved — thanks!
vote_down = 👎 Saved — thanks!
vote_removed = Vote removed
vote_same = Already saved
stale_button = This button is no longer valid.
not_yours = Only the person in this chat can do that.
regenerating = 🔄 Writing another answer…
regen_same = 🔄 Already writing another answer
regen_with = 🔀 Asking { $model }…
pick_regen_model = Pick a model
edit_prompt = ✏️ Send me the improved answer as your next message (a reply to this one) within 10 minutes — it will count as better than the original. /cancel to stop.
edit_placeholder = The improved answer
edit_saved = ✏️ Saved. Thanks — the conversation continues from your version.
edit_unchanged = That is the same as the original. Send a changed version, or /cancel.
edit_invisible = That shows nothing. Send the improved answer as text, or /cancel.
edit_not_text = Please send the improved answer as text, or /cancel.
cancelled = Cancelled.
nothing_to_cancel = Nothing to cancel.
arena_on = ⚔️ Arena mode is on: each question is answered by two anonymous models. Vote for the better answer to see who they were. /arena again turns it off.
arena_off = Arena mode is off: { $model } answers you again.
arena_unavailable = The arena needs at least two models, and only one is available now.
arena_side = Model { $side }
arena_revealed = Model { $side }: { $model }
arena_side_failed = Model { $side } failed to answer, so this round is not a battle.
winner_a = 🅰️ A is better
winner_b = 🅱️ B is better
winner_tie = 🤝 Tie
winner_both_bad = 👎 Both are bad
strength_much_better = Much better
strength_better = Better
strength_slightly_better = Slightly better
strength_about_same = About the same
battle_voted = Thanks! A was { $a }, B was { $b }.
battle_strength_saved = Saved: { $strength }
arena_needs_person = Arena battles are judged by the person who asked, so they are not available when writing on behalf of a chat.
battle_not_yours = Only the person who asked can judge this battle.
battle_final = This vote is final now.
stats =
    Your contribution so far:
    👍 { $likes } and 👎 { $dislikes } on answers
    ✏️ { $edits } improved answers
    ⚔️ { $battles } arena battles judged{ $favourite }

    Every judgement helps make the models better. Thank you!
stats_favourite = 🏆 your arena favourite: { $model }
cmd_arena = Arena: two anonymous models per question
cmd_stats = Your ratings so far
cmd_cancel = Cancel the current action
cmd_leaderboard = Model ratings from arena votes
leaderboard_header =
    🏆 Arena leaderboard: { $models } models, { $battles } judged anonymous battles.
    Ratings on the Elo scale (Bradley–Terry) with 95% intervals; a tie counts as half a win.
leaderboard_top = The top { $shown } of { $models } models are shown.
leaderboard_caption = Ratings with 95% intervals
leaderboard_empty = No arena battles have been judged yet. Try /arena and vote for the better answer!
leaderboard_failed = ⚠️ I couldn't build the leaderboard right now. Please try again later.
model_retired = { $old } is no longer available, so { $model } answers you now. /model to choose.
fallback_note = ⚠️ { $model } is unavailable right now; { $fallback } answers instead.
unknown_command = I don't know that command. See /help.
not_text = I can only read text for now — please write your question in words.
empty = Your message is empty — write something for me to answer.
context_trimmed = ℹ️ The oldest messages of this conversation no longer fit into the model's memory, so it answered without them. /new starts a fresh conversation.
busy = I'm still answering your previous message — try again in a moment.
err_unavailable = ⚠️ { $model } is not reachable right now. Try again later or pick another one: /model
err_timeout = ⚠️ { $model } took too long to answer. Try again or pick another model: /model
err_rate_limited = ⚠️ { $model } is overloaded right now. Please try again in a minute.
err_context_too_long = ⚠️ This is too long for { $model }. Shorten the message or start over with /new.
err_bad_request = ⚠️ { $model } refused the request. Try rephrasing, or pick another model: /model
err_model_not_served = ⚠️ { $model } is not served by its server right now. Pick another model: /model
err_stream_error = ⚠️ { $model } failed while answering. Please try again.
err_empty = ⚠️ { $model } returned an empty answer. Tap 🔄 to try again.
err_undelivered = ⚠️ I couldn't deliver the whole answer: Telegram did not accept it. Tap 🔄 for a new one.
err_internal = ⚠️ Something went wrong on my side. Please try again.
answer_cut = ⚠️ The answer was cut off: the model failed mid-way.
answer_in_file = 📄 The answer is too long for a chat: the rest of it is in this file.
answer_stopped = ⏹ Stopped.
answer_length = … (the model reached its length limit)
cmd_lang = Choose my language
lang_name = English
lang_auto = Automatic (from Telegram)
lang_menu = Language: { $language }. Choose another:
lang_set = Done. Language: { $language }.
lang_unknown = That language is no longer available.
