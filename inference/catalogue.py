"""The model catalogue: which models exist, where they are served and how they are called."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)


class CatalogueError(Exception):
    """The catalogue file is missing or invalid; the message is one line for the operator."""


ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
# A host a key may be sent to: name or IP, optionally `*.` for subdomains and `:port`.
HOST_PATTERN = re.compile(
    r"^(\*\.)?[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d{1,5})?$|^\[[0-9a-f:.]+\](:\d{1,5})?$")


def check_base_url(url: str) -> str:
    """An http(s) server URL the openai client can use: a host, no query, no fragment.

    (A query in a base URL ends up in the middle of every request path.)
    """
    if re.search(r"[\s\\]", url) or not re.match(r"^https?://", url):
        raise ValueError("must be an http(s):// URL without spaces or backslashes")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError as exc:
        raise ValueError(f"is not a valid URL ({exc})") from None
    if not parts.hostname:
        raise ValueError("has no host")
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise ValueError("must not have a ?query or #fragment; keys go in api_key_env")
    return url


BaseUrl = Annotated[str, AfterValidator(check_base_url)]


class GenerationParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(default=None, gt=0)

    def as_request(self) -> dict[str, float | int]:
        return self.model_dump(exclude_none=True)


class ParamBounds(BaseModel):
    """What users may set with /settings for one model (see `bot/handlers/settings.py`)."""

    model_config = ConfigDict(extra="forbid")

    temperature_min: float = Field(default=0.0, ge=0, le=2)
    temperature_max: float = Field(default=2.0, ge=0, le=2)
    # The longest answer a user may ask for, in tokens; None: a quarter of the context window.
    max_tokens: int | None = Field(default=None, gt=0)
    # Whether top_p may be set (some APIs refuse it, e.g. OpenAI's reasoning models).
    top_p: bool = True

    @model_validator(mode="after")
    def _check_range(self) -> ParamBounds:
        if self.temperature_min > self.temperature_max:
            raise ValueError("temperature_min: must not exceed temperature_max")
        return self


class Persona(BaseModel):
    """A system prompt users pick by name with /persona."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")
    title: str = Field(min_length=1, max_length=60)
    system_prompt: str = Field(min_length=1, max_length=8000)
    description: str = Field(default="", max_length=200)


class Timeouts(BaseModel):
    """Seconds. `first_token` bounds the wait for the first text; `total` the whole answer."""

    model_config = ConfigDict(extra="forbid")

    connect: float = Field(default=5.0, gt=0)
    first_token: float = Field(default=60.0, gt=0)
    total: float = Field(default=300.0, gt=0)


class SpeculativeConfig(BaseModel):
    """How a vLLM replica set was launched: a draft model proposes, the target verifies."""

    model_config = ConfigDict(extra="forbid")

    method: str = "draft_model"
    draft: str = Field(min_length=1)
    num_speculative_tokens: int = Field(default=4, gt=0, le=32)


class RayServeRef(BaseModel):
    """A model served as a Ray Serve LLM application (see inference/ray): its app, and Ray's
    Prometheus endpoint, where its engines' figures are labelled with the served name."""

    model_config = ConfigDict(extra="forbid")

    app: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")
    # A query is allowed: Prometheus' `/federate?match[]=…` gathers every node's figures.
    metrics_url: str | None = Field(default=None, pattern=r"^https?://[^\s@/]+(/\S*)?$")


TIER_NAME = r"^[a-z][a-z0-9_-]{0,31}$"
DEFAULT_TIER = "standard"
ALL_TIERS = "*"  # the key of a quota that applies to every tier


class Quota(BaseModel):
    """At most `messages` answers from one model per user in each calendar `per` (UTC)."""

    model_config = ConfigDict(extra="forbid")

    messages: int = Field(gt=0, le=1_000_000)
    per: Literal["hour", "day", "week"]


def _tiered_quota(value: Any) -> Any:
    """`quota: {messages: 50, per: day}` (every tier) or `quota: {standard: {…}, premium:
    {…}}` (per tier; a tier not named has no limit) → {tier or "*": Quota}."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError("expected {messages: N, per: hour|day|week} or a mapping of "
                         "tiers to those")
    if "messages" in value or "per" in value:
        return {ALL_TIERS: value}
    bad = next((k for k in value if not (k == ALL_TIERS or re.match(TIER_NAME, str(k)))), None)
    if bad is not None:
        raise ValueError(f"{bad!r} is neither messages/per nor a tier name")
    return value


class ModelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")
    # What users see in /model; an entry without one is shown by its id.
    title: str = Field(min_length=1, max_length=60)
    # openai: any OpenAI-compatible API; vllm: vLLM replicas (adds /metrics scraping);
    # hf: a transformers checkpoint run in this process (`pip install 'chatmux[local]'`).
    backend: Literal["openai", "vllm", "hf"] = "openai"
    base_url: BaseUrl | None = None
    # More replicas serving the same model (base_url is the first); requests are routed.
    replicas: list[BaseUrl] = Field(default_factory=list)
    # The served model name; for hf, defaults to the checkpoint directory's name.
    model: str = Field(default="", max_length=200)
    # The env var holding the API key; see inference/keys.py for where a key may be sent.
    api_key_env: str | None = Field(default=None, pattern=ENV_NAME)
    context_window: int = Field(default=8192, gt=0)
    vision: bool = False  # accepts images (OpenAI image_url content parts)
    # Serves OpenAI-compatible /v1/audio/transcriptions (Whisper): turns voice into text.
    # Such an entry is a transcription model only, never a chat model (see README).
    transcription: bool = False
    system_prompt: str | None = None
    params: GenerationParams = Field(default_factory=GenerationParams)
    # What users may change with /settings, within these bounds.
    user_params: ParamBounds = Field(default_factory=ParamBounds)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    enabled: bool = True
    # Relative chance of being drawn into an arena battle; 0 keeps the model out of the arena.
    arena_weight: float = Field(default=1.0, ge=0)
    speculative: SpeculativeConfig | None = None
    # backend vllm only: deployed on Ray Serve (the replica is Serve's proxy, `<proxy>/<app>/v1`).
    ray_serve: RayServeRef | None = None
    # Models to try, in order, when every replica of this one fails before the first token.
    fallback: list[str] = Field(default_factory=list)
    # backend: hf — a local checkpoint directory, an optional draft model for assisted
    # decoding with k tokens proposed per target pass, the device and the weights' dtype.
    path: str | None = Field(default=None, min_length=1)
    draft_path: str | None = Field(default=None, min_length=1)
    num_speculative_tokens: int = Field(default=4, gt=0, le=16)
    device: str = Field(default="auto", pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    # Answers per user and calendar window, for every tier or per tier (see README).
    quota: Annotated[dict[str, Quota] | None, BeforeValidator(_tiered_quota)] = None
    # Whether this model's answers may go into dumps (false: e.g. an API whose terms forbid
    # training other models on its outputs), and the licence dumps name for them.
    exportable: bool = True
    data_license: str | None = Field(default=None, min_length=1, max_length=200)

    def quota_for(self, tier: str | None) -> Quota | None:
        """The quota of a user in `tier` (None: no limit)."""
        if not self.quota:
            return None
        return self.quota.get(tier or DEFAULT_TIER, self.quota.get(ALL_TIERS))

    @model_validator(mode="before")
    @classmethod
    def _default_title(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("title") is None and isinstance(data.get("id"), str):
            return {**data, "title": data["id"]}
        return data

    @model_validator(mode="after")
    def _check_backend(self) -> ModelSpec:
        if self.backend == "hf":
            if self.vision or self.transcription:
                raise ValueError("vision: backend hf is text-only (no images, no transcription)")
            if not self.path:
                raise ValueError("path: Field required for backend hf (a local checkpoint)")
            if self.base_url or self.replicas:
                raise ValueError("base_url: backend hf runs in this process; drop base_url "
                                 "and replicas")
            if not self.model:
                self.model = Path(self.path).name or self.path
        else:
            if not self.base_url:
                raise ValueError(f"base_url: Field required for backend {self.backend}")
            if self.path or self.draft_path:
                raise ValueError("path: only backend hf takes path and draft_path")
            if not self.model:
                raise ValueError("model: Field required (the served model name)")
        if self.ray_serve is not None and self.backend != "vllm":
            raise ValueError("ray_serve: only backend vllm is served by Ray Serve")
        return self

    @property
    def urls(self) -> list[str]:
        """Every replica's base URL, base_url first, without duplicates (none for hf)."""
        if self.base_url is None:
            return []
        return list(dict.fromkeys([self.base_url, *self.replicas]))


class RetiredModel(BaseModel):
    """A model gone from `models:` whose answers are still in the database: the export
    policy dumps keep applying to them (an id in neither list counts as restricted)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")
    exportable: bool = True
    data_license: str | None = Field(default=None, min_length=1, max_length=200)


class Catalogue(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: list[ModelSpec] = Field(min_length=1)
    default_model: str
    # Whether users who never used /arena get two anonymous answers per question.
    arena_default: bool = False
    # Keys that models added from the chat may name, and the hosts each may be sent to
    # (entries' own api_key_env are granted to their own URLs already). See inference/keys.py.
    api_keys: dict[str, list[str]] = Field(default_factory=dict)
    # System prompts users pick with /persona.
    personas: list[Persona] = Field(default_factory=list)
    # Tiers admins put users in with /tier (quotas may differ per tier); new users are in
    # `standard`, which is always one of them.
    tiers: list[Annotated[str, Field(pattern=TIER_NAME)]] = Field(
        default_factory=lambda: [DEFAULT_TIER, "premium"])
    # Export policies of models no longer served (see RetiredModel).
    retired_models: list[RetiredModel] = Field(default_factory=list)

    @field_validator("tiers")
    @classmethod
    def _check_tiers(cls, value: list[str]) -> list[str]:
        if DEFAULT_TIER not in value:
            raise ValueError(f"must include {DEFAULT_TIER!r} (the tier of new users)")
        if len(set(value)) != len(value):
            raise ValueError("a tier is listed twice")
        return value

    @field_validator("api_keys")
    @classmethod
    def _check_api_keys(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, hosts in value.items():
            if not re.match(ENV_NAME, name):
                raise ValueError(f"{name!r} is not an environment variable name")
            if not hosts:
                raise ValueError(f"{name}: list the hosts this key may be sent to")
            bad = [h for h in hosts if not HOST_PATTERN.match(str(h).lower())]
            if bad:
                raise ValueError(f"{name}: {bad[0]!r} is not a host, host:port or *.domain")
        return {name: [h.lower() for h in hosts] for name, hosts in value.items()}

    @model_validator(mode="after")
    def _check_ids(self) -> Catalogue:
        seen: set[str] = set()
        for spec in self.models:
            if spec.id in seen:
                raise ValueError(f"model id {spec.id!r} is used twice")
            seen.add(spec.id)
        if self.default_model not in seen:
            raise ValueError(f"default_model {self.default_model!r} is not one of the models")
        if self.get(self.default_model).transcription:  # type: ignore[union-attr]
            raise ValueError(f"default_model {self.default_model!r} is a transcription model, "
                             "not a chat model")
        for spec in self.models:
            unknown = [f for f in spec.fallback if f not in seen or f == spec.id]
            if unknown:
                raise ValueError(f"model {spec.id!r}: fallback {unknown[0]!r} is not another model")
        for spec in self.models:
            unknown = [k for k in spec.quota or {} if k != ALL_TIERS and k not in self.tiers]
            if unknown:
                raise ValueError(f"model {spec.id!r}: quota tier {unknown[0]!r} is not one of "
                                 f"tiers {self.tiers}")
        both = next((r.id for r in self.retired_models if r.id in seen), None)
        if both is not None:
            raise ValueError(f"retired_models: {both!r} is also one of the models")
        personas = [p.id for p in self.personas]
        twice = next((p for p in personas if personas.count(p) > 1), None)
        if twice is not None:
            raise ValueError(f"persona id {twice!r} is used twice")
        return self

    def persona(self, persona_id: str | None) -> Persona | None:
        return next((p for p in self.personas if p.id == persona_id), None)

    def get(self, model_id: str) -> ModelSpec | None:
        return next((m for m in self.models if m.id == model_id), None)

    @property
    def enabled(self) -> list[ModelSpec]:
        return [m for m in self.models if m.enabled]


def _describe(error: ValidationError, raw: Any) -> str:
    """First validation problem as `models[1] (id 'x') → base_url: message`."""
    first = error.errors()[0]
    loc = list(first["loc"])
    where = ""
    if len(loc) >= 2 and loc[0] == "models" and isinstance(loc[1], int):
        entry = raw.get("models", [])[loc[1]] if isinstance(raw, dict) else None
        ident = entry.get("id") if isinstance(entry, dict) else None
        where = f"models[{loc[1]}]" + (f" (id {ident!r})" if ident else "")
        loc = loc[2:]
    field = ".".join(str(p) for p in loc if p != ALL_TIERS)  # quota.*.per → quota.per
    message = first["msg"].removeprefix("Value error, ")
    named = re.match(r"^(\w+): (.*)$", message)
    if not field and named:  # an entry-level check that names its field
        field, message = named.groups()
    parts = [p for p in (where, field) if p]
    return f"{' → '.join(parts) + ': ' if parts else ''}{message}"


def parse_catalogue(raw: Any, source: str = "catalogue") -> Catalogue:
    if not isinstance(raw, dict):
        raise CatalogueError(f"{source}: expected a mapping with `models:` and `default_model:`")
    try:
        return Catalogue.model_validate(raw)
    except ValidationError as exc:
        raise CatalogueError(f"{source}: {_describe(exc, raw)}") from None


def load_catalogue(path: str | Path) -> Catalogue:
    path = Path(path)
    if not path.is_file():
        raise CatalogueError(
            f"model catalogue {path} not found: copy models.example.yaml to {path} "
            "or set MODELS_FILE"
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise CatalogueError(f"{path}: not valid YAML{where}") from None
    return parse_catalogue(raw, str(path))
