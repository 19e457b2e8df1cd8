# /addmodel и /rmmodel для админов при POOL=ray (Ray Serve LLM).
ray-not-configured = ⚠️ Для POOL=ray нужны RAY_DASHBOARD_URL и RAY_SERVE_URL; ничего не запущено
ray-refused = ⚠️ { $model }: { $reason }; ничего не запущено
ray-deploying-start = 🚀 { $model }: разворачиваю { $target } с черновой моделью { $draft } (k={ $k }, { $gpus } GPU на реплику, реплик: { $replicas }) в Ray Serve…
ray-deploying = ⏳ { $model }: { $status } в Ray Serve… { $detail }
ray-ready = ✅ { $model }: работает в Ray Serve ({ $url })
ray-failed = ⚠️ { $model }: Ray Serve не смог развернуть модель ({ $status }) — { $detail }; приложение удалено
ray-timeout = ⚠️ { $model }: не заработала в Ray Serve за { $minutes } мин; приложение удалено
ray-vanished = ⚠️ { $model }: приложение в Ray Serve удалили, пока оно разворачивалось; ничего не добавлено
ray-remove-failed = ⚠️ не удалось удалить приложение Ray Serve { $app }: { $reason }
