# Graceful shutdown: an answer still being written when the bot stops (bot/answering.py).
answer_interrupted = ⚠️ Interrupted: the bot is restarting. Tap 🔄 to try again.
