# The first-run guide: shown in the console at start, and to admins on /start, when no
# catalogue model can answer. $file is the catalogue's path; $detail a variable name, a
# host:port, a served name or a path (see inference/reachability.py).
firstrun_title = ⚠️ No model can answer yet. The models in { $file }:
firstrun_model = • { $title } ({ $id }): { $reason }
firstrun_more_models = • … and { $count } more
firstrun_reason_ok = reachable
firstrun_reason_no_key = no API key: set { $detail }
firstrun_reason_key_not_allowed = its key { $detail } may not be sent to its server (see api_keys in the catalogue)
firstrun_reason_refused = connection refused at { $detail } (is the server running?)
firstrun_reason_dns = host not found: { $detail }
firstrun_reason_timeout = no answer from { $detail } within { $seconds } s
firstrun_reason_key_rejected = the server rejected the key in { $detail }
firstrun_reason_unknown_model = unknown model “{ $detail }”; the server has: { $served }
firstrun_reason_unknown_model_none = unknown model “{ $detail }”; the server lists no models
firstrun_reason_http_error = the server at { $detail } does not answer GET /models like an OpenAI-compatible API
firstrun_reason_no_engine = needs the local engine: pip install 'chatmux[local]'
firstrun_reason_no_files = no model directory at { $detail }
firstrun_reason_no_pool_agent = launched on the GPU pool, but no pool agent is running: start “chatmux pool-agent” with this bot's REDIS_URL and POOL_SECRET
firstrun_how = How to connect one:
firstrun_how_key = • an API: set the variable named above in the environment chatmux runs in, e.g. “export { $name }=…”, and restart chatmux;
firstrun_how_found = • a model server on this machine: { $servers }. Paste these lines under “models:” in { $file } (and set default_model to one of their ids), then restart chatmux:
firstrun_how_none = • a model server on this machine: none answers on the usual ports (Ollama 11434, llama.cpp 8080, vLLM 8000). Start one, e.g. “ollama serve” and “ollama pull llama3.2”, then restart chatmux.
firstrun_how_found_empty = • a model server on this machine: { $servers }. Load a model into it (for Ollama: “ollama pull llama3.2”), then restart chatmux.
firstrun_server = { $kind } at { $url } ({ $models })
firstrun_server_empty = { $kind } at { $url } (no models loaded)
