# The per-chat queue of questions, and edited questions (bot/queueing.py, bot/handlers/edited.py).
queue_waiting = ⏳ Queued, place { $place } in line: I'll answer it right after the answers before it.
queue_full = ⏳ { $limit } messages are already waiting for an answer, so I did not keep this one. Send it again once I've answered them.
queue_dropped = Queued messages left unanswered: { $count }. Send them again if you still need them.
edit_queued = ✍️ Updated: I'll answer the edited version.
edit_offer = You edited a message I have already answered. Shall I answer the new version? The old answer stays.
edit_answer_button = Answer the edited version
edit_answering = Answering the edited version…
edit_already_asked = That edited version has already been asked.
edit_not_author = Only the person who wrote the message can ask for this.
edit_closed = That conversation was ended with /new. Send the edited question as a new message.
