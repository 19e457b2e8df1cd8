# Rate limit, quotas, /usage, bans and the admin commands for them (bot/limits.py,
# bot/handlers/limits.py, bot/middlewares/limits.py).
cmd_usage = Сколько осталось: сообщения по моделям
dur_days = { $n } д
dur_hours = { $n } ч
dur_minutes = { $n } мин
dur_seconds = { $n } с
limit_rate = ⏳ Слишком много сообщений подряд. Попробуйте через { $reset }.
limit_presses = ⏳ Слишком много нажатий. Подождите { $reset }.
limit_quota = ⛔ Лимит для { $model } исчерпан: { $messages } сообщений { $per ->
    [hour] в час
    [week] в неделю
   *[day] в день
}. Обновится через { $reset }.
banned = Вы заблокированы.
usage_title = Ваши лимиты (уровень: { $tier }):
usage_quota = { $model }: осталось { $left } из { $messages } { $per ->
    [hour] в этом часе
    [week] на этой неделе
   *[day] на сегодня
}, обновится через { $reset }
usage_unlimited = { $model }: без лимита
usage_rate = Сейчас можно отправить { $ready } из { $burst } вопросов подряд; ещё один — каждые { $every }.
usage_rate_off = Скорость отправки вопросов не ограничена.
usage_admin = Вы администратор: лимиты на вас не действуют.
admin_limits_usage = ⚠️ Использование: /{ $command } <Telegram id или @username>{ $command ->
    [ban] {" "}[причина]
   *[other] {""}
}
admin_tier_usage = ⚠️ Использование: /tier <Telegram id или @username> <уровень> — уровни: { $tiers }
admin_tier_unknown = ⚠️ Нет уровня { $tier } (уровни: { $tiers })
admin_user_unknown = ⚠️ Пользователь { $user } боту неизвестен (он должен был написать боту)
admin_tier_set = ✅ { $user } теперь на уровне { $tier }
admin_ban_admin = ⚠️ Администратора нельзя заблокировать
admin_banned = ✅ { $user } заблокирован: без ответов и голосов
admin_unbanned = ✅ { $user } разблокирован
admin_not_banned = ⚠️ { $user } не заблокирован
