# The database (or Redis) is unreachable: restarting, down, or not answering.
outage_unavailable = ⚠️ Temporarily unavailable, please try again in a minute.
# An answer was written but could not be stored: shown without buttons.
outage_answer_not_saved = ⚠️ This answer could not be saved (the database is unavailable), so it has no buttons and the conversation will not continue from it.
