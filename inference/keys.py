"""API keys bound to where they may go.

A model names the env var that holds its key (`api_key_env`). Which env vars may be named, and
which hosts each one may be sent to, is the operator's decision, made in the catalogue file:

- every catalogue entry with `api_key_env` grants that key to its own URLs' host:port;
- the `api_keys:` section grants keys to more hosts, for models admins add from the chat:
  `api_keys: {OPENROUTER_API_KEY: [openrouter.ai], LAB_KEY: ["*.lab.example:8000"]}`.

Nothing else can be sent: not chatmux's own settings (BOT_TOKEN, DATABASE_URL, …), not any other
variable of the process, and a granted key never to a host it was not granted for. A refusal
never depends on whether a variable exists, so it tells nothing about the environment.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from inference.catalogue import Catalogue, CatalogueError, ModelSpec

_DEFAULT_PORTS = {"http": 80, "https": 443}


class KeyRefused(Exception):
    """A model may not use this key at these URLs; the message says why, for an admin."""


def origin(url: str) -> tuple[str, int]:
    """(host, port) a request to `url` goes to; host lower-case, the scheme's port by default."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host:
        raise ValueError(f"no host in {url!r}")
    return host, parts.port or _DEFAULT_PORTS.get(parts.scheme.lower(), 0)


def _split_pattern(pattern: str) -> tuple[str, int | None]:
    if pattern.startswith("["):  # [IPv6]:port
        host, _, port = pattern[1:].partition("]")
        return host, int(port[1:]) if port else None
    host, _, port = pattern.partition(":")
    return host, int(port) if port else None


def host_matches(pattern: str, url: str) -> bool:
    """`api.openai.com` (any port), `gpu1:8000`, `*.example.com` (subdomains, any port)."""
    host, port = origin(url)
    want_host, want_port = _split_pattern(pattern.lower())
    if want_port is not None and want_port != port:
        return False
    if want_host.startswith("*."):
        return host.endswith(want_host[1:])
    return host == want_host


class KeyRing:
    """The keys models may use and the hosts each may be sent to; looks values up in `env`."""

    def __init__(self, grants: Mapping[str, Iterable[str]], env: Mapping[str, str]) -> None:
        self._grants = {name: frozenset(hosts) for name, hosts in grants.items()}
        self._env = env

    @classmethod
    def from_catalogue(cls, catalogue: Catalogue, env: Mapping[str, str],
                       reserved: Iterable[str] = ()) -> KeyRing:
        """Grants from the file's entries and its `api_keys:` section.

        `reserved` are names that can never be a model's key (chatmux's own settings); a
        catalogue that names one is refused with `CatalogueError`.
        """
        grants: dict[str, set[str]] = {n: set(h) for n, h in catalogue.api_keys.items()}
        for spec in catalogue.models:
            if spec.api_key_env:
                grants.setdefault(spec.api_key_env, set()).update(
                    "{}:{}".format(*origin(url)) for url in spec.urls)
        forbidden = sorted(set(grants) & {r.upper() for r in reserved})
        if forbidden:
            raise CatalogueError(
                f"catalogue: {forbidden[0]} is one of chatmux's own settings and can never be "
                "sent to a model as an API key")
        return cls(grants, env)

    def names(self) -> list[str]:
        """The env vars models may name as their key."""
        return sorted(self._grants)

    def hosts(self, name: str) -> list[str]:
        return sorted(self._grants.get(name, ()))

    def check(self, name: str | None, urls: Iterable[str]) -> None:
        """Raise `KeyRefused` unless key `name` may be sent to every one of `urls`."""
        if name is None:
            return
        granted = self._grants.get(name)
        if granted is None:
            listed = ", ".join(self.names()) or "none are declared"
            raise KeyRefused(f"{name} is not a key models may use (allowed: {listed}; the "
                             "operator declares them in the catalogue's api_keys:)")
        for url in urls:
            if not any(host_matches(pattern, url) for pattern in granted):
                host, port = origin(url)
                raise KeyRefused(f"{name} may only be sent to {', '.join(sorted(granted))}, "
                                 f"not to {host}:{port}")

    def allows(self, spec: ModelSpec) -> bool:
        try:
            self.check(spec.api_key_env, spec.urls)
        except KeyRefused:
            return False
        return True

    def key_for(self, spec: ModelSpec) -> str | None:
        """The value of `spec`'s key (None if it names none or it is unset).

        Raises `KeyRefused` when the key may not go to `spec`'s URLs.
        """
        self.check(spec.api_key_env, spec.urls)
        return (self._env.get(spec.api_key_env) or None) if spec.api_key_env else None

    def is_set(self, name: str) -> bool:
        """Whether a granted key has a value (never asked for names outside the grants)."""
        return name in self._grants and bool(self._env.get(name))

    def values(self) -> list[str]:
        """Every granted key's value, for log redaction."""
        return [v for name in self._grants if (v := self._env.get(name))]
