# /privacy: what is stored, consent to datasets, and "forget me" (bot/handlers/privacy.py).

cmd_privacy = Your data: datasets and "forget me"
start_privacy = What I keep and how to delete it: /privacy
privacy_text =
    🔒 What I store about you
    • Your Telegram id, name, username and language; your model, arena, /lang and /settings choices.
    • Your messages (text, photo and voice references, transcripts) and the answers to them, with the model and settings that produced them.
    • Your 👍/👎 votes, improved answers and arena judgements.
    Why: to keep the conversation going, and to turn judgements into preference datasets and the model leaderboard.
    Who can export: only the bot's admins, as datasets that never contain Telegram ids, names or usernames. Data is kept until you delete it.

    Your messages and judgements in datasets: { $status }
privacy_included = included
privacy_excluded = excluded
privacy_default_note = (the default here; you have not chosen)
privacy_opt_out = 🚫 Keep me out of datasets
privacy_opt_in = ✅ Include me in datasets
privacy_forget = 🗑 Forget me
privacy_forget_confirm =
    🗑 Delete everything I store about you: your messages and the answers to them, votes, improved answers, battles, settings and your Telegram id? This cannot be undone. Where others in a group replied below your message, it stays as an empty placeholder.
privacy_forget_yes = Yes, delete everything
privacy_forget_no = Cancel
privacy_opted_out = 🚫 Done: nothing of yours (from before, too) goes into datasets. You can keep chatting.
privacy_opted_in = ✅ Done: your messages and judgements may go into datasets.
privacy_forgotten = ✅ Everything I stored about you has been deleted. If you write again, you start afresh.
privacy_already_forgotten = Already deleted: nothing of yours is stored.
privacy_not_yours = This is someone else's privacy menu. Send /privacy for your own.
privacy_needs_person = /privacy is about a person's data; messages sent on behalf of a chat have none of their own.
privacy_failed = ⚠️ Could not delete your data just now. Nothing was changed; please try again in a minute.
