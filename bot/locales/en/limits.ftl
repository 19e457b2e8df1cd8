# Rate limit, quotas, /usage, bans and the admin commands for them (bot/limits.py,
# bot/handlers/limits.py, bot/middlewares/limits.py).
cmd_usage = What you have left: messages per model
dur_days = { $n } d
dur_hours = { $n } h
dur_minutes = { $n } min
dur_seconds = { $n } s
limit_rate = ⏳ Too many messages at once. Try again in { $reset }.
limit_presses = ⏳ Too many presses. Wait { $reset }.
limit_quota = ⛔ Limit reached for { $model }: { $messages } messages { $per ->
    [hour] per hour
    [week] per week
   *[day] per day
}. Resets in { $reset }.
banned = You are blocked.
usage_title = Your limits (tier: { $tier }):
usage_quota = { $model }: { $left } of { $messages } left { $per ->
    [hour] this hour
    [week] this week
   *[day] today
}, resets in { $reset }
usage_unlimited = { $model }: no limit
usage_rate = Right now you can send { $ready } of { $burst } questions in a row; one more every { $every }.
usage_rate_off = No limit on how fast you send questions.
usage_admin = You are an admin: no limits apply to you.
admin_limits_usage = ⚠️ Usage: /{ $command } <Telegram id or @username>{ $command ->
    [ban] {" "}[reason]
   *[other] {""}
}
admin_tier_usage = ⚠️ Usage: /tier <Telegram id or @username> <tier> — tiers: { $tiers }
admin_tier_unknown = ⚠️ No tier { $tier } (tiers: { $tiers })
admin_user_unknown = ⚠️ No user { $user } known to the bot (they must have written to it)
admin_tier_set = ✅ { $user } is now in tier { $tier }
admin_ban_admin = ⚠️ Admins cannot be banned
admin_banned = ✅ { $user } is banned: no answers, no votes
admin_unbanned = ✅ { $user } is unbanned
admin_not_banned = ⚠️ { $user } is not banned
