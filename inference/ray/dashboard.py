"""An async client of the Ray dashboard's Serve REST API (`/api/serve/applications/`).

`PUT` replaces the whole set of applications and has no compare-and-swap, so every change is
a read-modify-write: under a lock (an asyncio lock in this process and, when the bots share a
Redis, a Redis lock across processes), `GET` the deployed configs, change only this model's
app, `PUT` them all back, then `GET` again to check nothing was lost to a writer that does not
take our lock (one retry, then an error). Apps deployed imperatively (`serve.run`, no
declarative config) would be dropped by a PUT: the client refuses to touch such a cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from redis.asyncio import Redis
from redis.exceptions import LockError, RedisError

log = logging.getLogger(__name__)

API = "/api/serve/applications/"
LOCK_TTL = 60.0  # seconds a crashed holder keeps the Redis lock
LOCK_WAIT = 60.0
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


class RayServeError(Exception):
    """The dashboard refused or did not answer; the message is one line for an admin."""


class RayDashboard:
    def __init__(self, dashboard_url: str, serve_url: str, *, token: str | None = None,
                 redis: Redis | None = None, lock_name: str = "chatmux:ray:serve-config",
                 timeout: float = 30.0) -> None:
        self.url = dashboard_url.rstrip("/")
        self.serve_url = serve_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._redis = redis
        self._lock_name = lock_name
        self._local = asyncio.Lock()
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    # --- reading ---------------------------------------------------------------------------

    async def _request(self, method: str, body: dict[str, Any] | None = None) -> Any:
        try:
            async with aiohttp.ClientSession(timeout=self._timeout) as session, \
                    session.request(method, self.url + API, json=body, headers=self._headers,
                                    allow_redirects=False) as resp:
                text = await resp.text()
                if resp.status in (401, 403):
                    raise RayServeError(
                        f"the Ray dashboard refused the request ({resp.status}): set "
                        "RAY_DASHBOARD_TOKEN_ENV to the variable holding its token")
                if resp.status != 200:
                    line = " ".join(text.split())[:300]
                    raise RayServeError(f"the Ray dashboard answered {method} with "
                                        f"{resp.status}: {line}")
                return await resp.json(content_type=None) if method == "GET" else None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RayServeError(f"the Ray dashboard at {self.url} did not answer "
                                f"({type(exc).__name__})") from None
        except ValueError:
            raise RayServeError("the Ray dashboard's answer is not JSON") from None

    async def details(self) -> dict[str, Any]:
        """The whole `GET /api/serve/applications/` answer."""
        data = await self._request("GET")
        if not isinstance(data, dict):
            raise RayServeError("the Ray dashboard's answer has no applications")
        return data

    async def app(self, name: str) -> dict[str, Any] | None:
        """One application's status entry (None if there is no such app)."""
        return ((await self.details()).get("applications") or {}).get(name)

    # --- writing ---------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _locked(self) -> AsyncIterator[None]:
        async with self._local:
            if self._redis is None:
                yield
                return
            lock = self._redis.lock(self._lock_name, timeout=LOCK_TTL,
                                    blocking_timeout=LOCK_WAIT)
            try:
                acquired = await lock.acquire()
            except (RedisError, OSError) as exc:
                raise RayServeError(f"could not take the Ray config lock in Redis ({exc})") \
                    from None
            if not acquired:
                raise RayServeError("another bot process held the Ray config lock too long")
            try:
                yield
            finally:
                with contextlib.suppress(LockError, RedisError, OSError):
                    await lock.release()

    def _http_options(self, details: dict[str, Any]) -> dict[str, Any]:
        """Serve's proxy address: as running, else from RAY_SERVE_URL (loopback stays so)."""
        running = details.get("http_options") or {}
        if running.get("port"):
            return {"host": running.get("host", "0.0.0.0"), "port": running["port"]}
        parts = urlsplit(self.serve_url)
        host = parts.hostname or ""
        return {"host": host if host in LOOPBACK else "0.0.0.0", "port": parts.port or 8000}

    @staticmethod
    def _configs(details: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """The declared apps: an app being deleted has no config and is left out."""
        configs: dict[str, dict[str, Any]] = {}
        for name, app in (details.get("applications") or {}).items():
            config = app.get("deployed_app_config")
            if isinstance(config, dict):
                configs[name] = config
            elif app.get("status") == "DELETING":
                continue
            elif app.get("source") == "imperative":
                raise RayServeError(
                    f"Ray Serve app {name!r} was not deployed from a config (serve.run): a "
                    "declarative update would delete it; nothing changed")
            else:
                raise RayServeError(f"Ray Serve has no config for app {name!r} yet; nothing "
                                    "changed, try again")
        return configs

    async def _change(self, name: str,
                      edit: Callable[[dict[str, dict[str, Any]]], None],
                      check: Callable[[dict[str, dict[str, Any]]], bool]) -> None:
        async with self._locked():
            for attempt in range(2):
                details = await self.details()
                configs = self._configs(details)
                kept = {n: c for n, c in configs.items() if n != name}
                edit(configs)
                await self._request("PUT", {"http_options": self._http_options(details),
                                            "applications": list(configs.values())})
                after = self._configs(await self.details())
                lost = [n for n in kept if n not in after]
                if check(after) and not lost:
                    return
                log.warning("ray: a concurrent change to Serve's config (attempt %d): %s",
                            attempt + 1, f"lost {lost}" if lost else f"{name} not as written")
            raise RayServeError("Serve's config was changed by someone else at the same time "
                                "twice; try again")

    async def put_app(self, config: dict[str, Any]) -> None:
        """Add or replace one app, keeping every other; only that app restarts."""
        name = config["name"]

        def edit(configs: dict[str, dict[str, Any]]) -> None:
            configs[name] = config

        def written(after: dict[str, dict[str, Any]]) -> bool:
            # Ray echoes what it was given; any defaults it adds do not count.
            found = after.get(name) or {}
            return all(found.get(key) == value for key, value in config.items())

        await self._change(name, edit, written)

    async def remove_app(self, name: str) -> bool:
        """Remove one app, keeping every other; False if there was no such app."""
        present = False

        def edit(configs: dict[str, dict[str, Any]]) -> None:
            nonlocal present
            present = configs.pop(name, None) is not None

        await self._change(name, edit, lambda after: name not in after)
        return present
