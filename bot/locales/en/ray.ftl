# Admins' /addmodel and /rmmodel with POOL=ray (Ray Serve LLM).
ray-not-configured = ⚠️ POOL=ray needs RAY_DASHBOARD_URL and RAY_SERVE_URL; nothing launched
ray-refused = ⚠️ { $model }: { $reason }; nothing launched
ray-deploying-start = 🚀 { $model }: deploying { $target } with draft { $draft } (k={ $k }, { $gpus } GPU per replica, replicas { $replicas }) on Ray Serve…
ray-deploying = ⏳ { $model }: { $status } on Ray Serve… { $detail }
ray-ready = ✅ { $model }: running on Ray Serve ({ $url })
ray-failed = ⚠️ { $model }: Ray Serve could not deploy it ({ $status }) — { $detail }; its app was removed
ray-timeout = ⚠️ { $model }: not running on Ray Serve after { $minutes } min; its app was removed
ray-vanished = ⚠️ { $model }: its Ray Serve app was removed by someone else while deploying; nothing added
ray-remove-failed = ⚠️ could not remove the Ray Serve app { $app }: { $reason }
