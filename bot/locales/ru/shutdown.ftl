# Graceful shutdown: an answer still being written when the bot stops (bot/answering.py).
answer_interrupted = ⚠️ Прервано: бот перезапускается. Нажмите 🔄, чтобы попробовать снова.
