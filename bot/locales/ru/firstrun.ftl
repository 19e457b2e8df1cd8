# Подсказка первого запуска: в консоли при старте и админам на /start, когда ни одна
# модель каталога не может ответить.
firstrun_title = ⚠️ Пока ни одна модель не может ответить. Модели в { $file }:
firstrun_model = • { $title } ({ $id }): { $reason }
firstrun_more_models = • … и ещё { $count }
firstrun_reason_ok = доступна
firstrun_reason_no_key = нет API-ключа: задайте { $detail }
firstrun_reason_key_not_allowed = её ключ { $detail } нельзя отправлять на её сервер (см. api_keys в каталоге)
firstrun_reason_refused = соединение отклонено: { $detail } (сервер запущен?)
firstrun_reason_dns = хост не найден: { $detail }
firstrun_reason_timeout = { $detail } не ответил за { $seconds } с
firstrun_reason_key_rejected = сервер отверг ключ из { $detail }
firstrun_reason_unknown_model = неизвестная модель «{ $detail }»; на сервере есть: { $served }
firstrun_reason_unknown_model_none = неизвестная модель «{ $detail }»; сервер не перечисляет ни одной модели
firstrun_reason_http_error = сервер { $detail } отвечает на GET /models не как OpenAI-совместимый API
firstrun_reason_no_engine = нужен локальный движок: pip install 'chatmux[local]'
firstrun_reason_no_files = нет каталога модели { $detail }
firstrun_reason_no_pool_agent = запущена в пуле GPU, но ни один агент пула не работает: запустите «chatmux pool-agent» с REDIS_URL и POOL_SECRET этого бота
firstrun_how = Как подключить модель:
firstrun_how_key = • API: задайте названную выше переменную в окружении, где запускается chatmux, например «export { $name }=…», и перезапустите chatmux;
firstrun_how_found = • сервер моделей на этой машине: { $servers }. Вставьте эти строки под «models:» в { $file } (и укажите одну из их id в default_model), затем перезапустите chatmux:
firstrun_how_none = • сервер моделей на этой машине: на обычных портах никто не отвечает (Ollama 11434, llama.cpp 8080, vLLM 8000). Запустите его, например «ollama serve» и «ollama pull llama3.2», затем перезапустите chatmux.
firstrun_how_found_empty = • сервер моделей на этой машине: { $servers }. Загрузите в него модель (для Ollama: «ollama pull llama3.2»), затем перезапустите chatmux.
firstrun_server = { $kind } на { $url } ({ $models })
firstrun_server_empty = { $kind } на { $url } (модели не загружены)
