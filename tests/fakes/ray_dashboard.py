"""A strict fake of Ray's dashboard Serve REST API, with Serve's HTTP proxy and Ray's metrics.

- `GET/PUT /api/serve/applications/`: a PUT replaces the whole set, validated against the
  schema fields chatmux uses (Ray's ServeDeploySchema / ServeApplicationSchema and Serve LLM's
  LLMConfig); anything else is a 400 as Ray gives. A new or changed app is DEPLOYING for
  `deploy_polls` GETs, then RUNNING, or DEPLOY_FAILED with a traceback in its deployment's
  message if its model is in `failing`.
- `/<app>/v1/…`: the proxy, forwarding a RUNNING app's requests to `backend` (an OpenAI fake
  whose served name is the app's model id); anything else is a 404, as Serve's proxy does.
- `/metrics`: the backend's `vllm:*` figures as Ray exports them (`ray_vllm_*`, labelled by
  `model_name`), for each RUNNING app.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from inference.vllm_metrics import iter_samples

TOP_KEYS = {"http_options", "applications", "proxy_location", "grpc_options", "logging_config",
            "target_capacity"}
HTTP_KEYS = {"host", "port", "root_path", "request_timeout_s", "keep_alive_timeout_s"}
APP_KEYS = {"name", "route_prefix", "import_path", "args", "runtime_env", "deployments",
            "external_scaler_enabled", "logging_config"}
ARGS_KEYS = {"llm_configs", "ingress_deployment_config", "ingress_cls_config"}
LLM_KEYS = {"runtime_env", "model_loading_config", "llm_engine", "engine_kwargs",
            "accelerator_type", "accelerator_config", "placement_group_config", "lora_config",
            "deployment_config", "server_cls", "experimental_configs", "log_engine_metrics",
            "callback_config"}
LOADING_KEYS = {"model_id", "model_source", "tokenizer_source"}
DEPLOYMENT_KEYS = {"name", "num_replicas", "ray_actor_options", "max_ongoing_requests",
                   "autoscaling_config", "max_queued_requests", "user_config",
                   "health_check_period_s", "health_check_timeout_s",
                   "graceful_shutdown_wait_loop_s", "graceful_shutdown_timeout_s",
                   "logging_config", "request_router_config"}
# vLLM engine arguments chatmux may send (a subset of vLLM's EngineArgs).
ENGINE_KEYS = {"tensor_parallel_size", "max_model_len", "dtype", "trust_remote_code",
               "speculative_config"}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class Invalid(ValueError):
    pass


def _only(where: str, data: Any, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise Invalid(f"{where}: expected an object")
    extra = set(data) - allowed
    if extra:
        raise Invalid(f"{where}: extra fields not permitted: {sorted(extra)}")
    return data


def validate(body: Any) -> None:
    _only("body", body, TOP_KEYS)
    http = _only("http_options", body.get("http_options", {}), HTTP_KEYS)
    if "port" in http and not isinstance(http["port"], int):
        raise Invalid("http_options.port: value is not a valid integer")
    apps = body.get("applications")
    if not isinstance(apps, list):
        raise Invalid("applications: field required (a list)")
    names, prefixes = set(), set()
    for i, app in enumerate(apps):
        _only(f"applications.{i}", app, APP_KEYS)
        name, prefix = app.get("name"), app.get("route_prefix")
        if not isinstance(name, str) or not NAME_RE.match(name) or name in names:
            raise Invalid(f"applications.{i}.name: missing, malformed or used twice")
        if not isinstance(prefix, str) or not prefix.startswith("/") or prefix in prefixes:
            raise Invalid(f"applications.{i}.route_prefix: must start with / and be unique")
        names.add(name)
        prefixes.add(prefix)
        if app.get("import_path") != "ray.serve.llm:build_openai_app":
            raise Invalid(f"applications.{i}.import_path: this fake serves Serve LLM only")
        args = _only(f"applications.{i}.args", app.get("args"), ARGS_KEYS)
        ingress = args.get("ingress_deployment_config", {})
        _only(f"applications.{i}.args.ingress_deployment_config", ingress, DEPLOYMENT_KEYS)
        configs = args.get("llm_configs")
        if not isinstance(configs, list) or not configs:
            raise Invalid(f"applications.{i}.args.llm_configs: a non-empty list is required")
        for j, llm in enumerate(configs):
            where = f"applications.{i}.args.llm_configs.{j}"
            _only(where, llm, LLM_KEYS)
            loading = _only(f"{where}.model_loading_config", llm.get("model_loading_config"),
                            LOADING_KEYS)
            if not loading.get("model_id") or not loading.get("model_source"):
                raise Invalid(f"{where}.model_loading_config: model_id and model_source")
            _only(f"{where}.engine_kwargs", llm.get("engine_kwargs", {}), ENGINE_KEYS)
            deployment = _only(f"{where}.deployment_config", llm.get("deployment_config", {}),
                               DEPLOYMENT_KEYS)
            if "num_replicas" in deployment and "autoscaling_config" in deployment:
                raise Invalid(f"{where}.deployment_config: num_replicas or autoscaling_config")
            accel = llm.get("accelerator_config")
            if accel is not None and accel.get("kind") not in ("cpu", "gpu", "tpu"):
                raise Invalid(f"{where}.accelerator_config.kind: cpu, gpu or tpu")
            if llm.get("accelerator_type") and accel and accel.get("kind") == "cpu":
                raise Invalid(f"{where}: accelerator_type cannot be used with CPU-only "
                              "configurations")


@dataclass
class _App:
    config: dict[str, Any]
    polls_left: int
    status: str = "DEPLOYING"
    message: str = ""

    @property
    def llm(self) -> dict[str, Any]:
        return self.config["args"]["llm_configs"][0]

    @property
    def model_id(self) -> str:
        return self.llm["model_loading_config"]["model_id"]

    def entry(self) -> dict[str, Any]:
        if self.status == "DELETING":  # Ray has dropped its config by then
            return {"name": self.config["name"], "route_prefix": self.config["route_prefix"],
                    "status": "DELETING", "message": "Deleting application.",
                    "deployed_app_config": None, "source": "declarative", "deployments": {}}
        server = f"LLMServer:{self.model_id}"
        dep_status = {"RUNNING": "HEALTHY", "DEPLOY_FAILED": "DEPLOY_FAILED"}.get(
            self.status, "UPDATING")
        return {
            "name": self.config["name"], "route_prefix": self.config["route_prefix"],
            "docs_path": None, "status": self.status,
            "message": ("Failed to update the deployments ['" + server + "']."
                        if self.status == "DEPLOY_FAILED" else ""),
            "last_deployed_time_s": 0.0, "deployed_app_config": copy.deepcopy(self.config),
            "source": "declarative",
            "deployments": {
                server: {"name": server, "status": dep_status, "message": self.message,
                         "replicas": []},
                "OpenAiIngress": {"name": "OpenAiIngress", "status": "HEALTHY", "message": "",
                                  "replicas": []},
            },
        }


@dataclass
class FakeRayDashboard:
    backend_root: str | None = None  # the OpenAI fake behind the proxy
    token: str | None = None
    deploy_polls: int = 2
    failing: dict[str, str] = field(default_factory=dict)  # model_source → exception line
    put_delay: float = 0.0
    apps: dict[str, _App] = field(default_factory=dict)
    puts: list[dict[str, Any]] = field(default_factory=list)
    http_options: dict[str, Any] | None = None
    # A writer that does not take chatmux's lock: its set of configs replaces the next PUT's.
    interfere_next: list[dict[str, Any]] | None = None
    _runner: web.AppRunner | None = None
    _port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/api/serve/applications/", self._get)
        app.router.add_put("/api/serve/applications/", self._put)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_route("*", "/{app}/{tail:.*}", self._proxy)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def live(self) -> set[str]:
        """The apps that exist and are not being deleted."""
        return {name for name, app in self.apps.items() if app.status != "DELETING"}

    def _authorised(self, request: web.Request) -> bool:
        return self.token is None or request.headers.get("Authorization") == \
            f"Bearer {self.token}"

    async def _get(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.Response(status=401, text="Unauthorized: missing or invalid token")
        for name, app in list(self.apps.items()):
            if app.status == "DELETING":
                app.polls_left -= 1
                if app.polls_left < 0:
                    del self.apps[name]
                continue
            if app.status == "DEPLOYING":
                source = app.llm["model_loading_config"]["model_source"]
                if source in self.failing:
                    app.message = ("Traceback (most recent call last):\n  File \"vllm_engine."
                                   f"py\", line 222\n{self.failing[source]}")
                app.polls_left -= 1
                if app.polls_left <= 0:
                    app.status = "DEPLOY_FAILED" if source in self.failing else "RUNNING"
        body: dict[str, Any] = {"controller_info": {}, "proxies": {},
                                "applications": {n: a.entry() for n, a in self.apps.items()},
                                "target_capacity": None}
        if self.http_options is not None:
            body["http_options"] = {**self.http_options, "root_path": ""}
        return web.json_response(body)

    async def _put(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.Response(status=401, text="Unauthorized: missing or invalid token")
        try:
            body = json.loads(await request.text())
            validate(body)
        except (ValueError, AttributeError) as exc:
            return web.Response(status=400, text=f"1 validation error for ServeDeploySchema\n{exc}")
        self.puts.append(body)
        await asyncio.sleep(self.put_delay)
        configs = body["applications"]
        if self.interfere_next is not None:
            configs, self.interfere_next = self.interfere_next, None
        if self.http_options is None:
            self.http_options = body.get("http_options", {"host": "0.0.0.0", "port": 8000})
        new: dict[str, _App] = {}
        for config in configs:
            old = self.apps.get(config["name"])
            new[config["name"]] = old if old is not None and old.config == config else \
                _App(copy.deepcopy(config), self.deploy_polls)
        for name, app in self.apps.items():  # removed: DELETING for a GET, then gone
            if name not in new:
                if app.status != "DELETING":
                    app.status, app.polls_left = "DELETING", 1
                new[name] = app
        self.apps = new
        return web.Response(status=200)

    def _running(self, name: str) -> _App | None:
        app = self.apps.get(name)
        return app if app is not None and app.status == "RUNNING" else None

    async def _proxy(self, request: web.Request) -> web.StreamResponse:
        app = self._running(request.match_info["app"])
        if app is None or self.backend_root is None or \
                not request.match_info["tail"].startswith("v1/"):
            return web.Response(status=404, text="Path not found")
        body = await request.read()
        async with aiohttp.ClientSession() as session, session.request(
                request.method, f"{self.backend_root}/{request.match_info['tail']}",
                data=body or None, headers={"Content-Type": "application/json"}) as upstream:
            response = web.StreamResponse(status=upstream.status)
            response.content_type = upstream.content_type
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    async def _metrics(self, request: web.Request) -> web.Response:
        if self.backend_root is None:
            return web.Response(text="")
        async with aiohttp.ClientSession() as session, \
                session.get(f"{self.backend_root}/metrics") as r:
            text = await r.text()
        lines = []
        for name, app in self.apps.items():
            if app.status != "RUNNING":
                continue
            for metric, value in iter_samples(text):
                if metric.startswith("vllm:"):
                    ray_name = "ray_vllm_" + metric.removeprefix("vllm:")
                    lines.append(f'{ray_name}{{Component="core_worker",ReplicaId="{name}1",'
                                 f'engine="0",model_name="{app.model_id}"}} {value}')
        return web.Response(text="\n".join(lines) + "\n")
