"""Record what a vLLM server answers to the requests chatmux depends on, byte for byte.

    python -m tests.vllm_real.recording --url http://127.0.0.1:8000 \\
        --out tests/fakes/recordings/vllm-0.32.0

The same requests drive the fake (`tests/unit/test_fake_vllm_recordings.py`) and, in the real
tier, a live server (`tests/vllm_real/test_recordings_real.py`); `tests/fakes/vllm_shapes.py`
compares what came back. Prompts that must have an exact length in tokens (one over the
context, exactly the context, a few short of it) are fitted with the server's own `/tokenize`,
so they mean the same thing to servers that count tokens differently.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

# Raw bodies that are not JSON are kept next to the exchange's .json, with these suffixes.
RAW_SUFFIX = {"text/event-stream": ".sse", "text/plain": ".txt"}
ABBREVIATE = 120  # request strings longer than this are stored abbreviated
USER = "Write about the weather in four words or more."  # the fake echoes it: > 4 tokens


@dataclass
class Exchange:
    """One request and the server's answer (`body` is the raw text)."""

    name: str
    method: str
    path: str
    request: Any  # the JSON sent (or the raw text, for a body that is not JSON); None: none
    status: int
    content_type: str | None
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Probe:
    """A request to make: `body` is JSON, raw text (`raw=True`) or a function of the server
    (model name, max_model_len, a prompt fitter) giving the JSON."""

    name: str
    method: str
    path: str
    body: Any = None
    raw: bool = False


class Target:
    """The server being recorded: its model, context length and a prompt fitter."""

    def __init__(self, session: aiohttp.ClientSession, root: str) -> None:
        self.session, self.root = session, root.rstrip("/")
        self.model = ""
        self.max_model_len = 0

    async def load(self) -> None:
        async with self.session.get(f"{self.root}/v1/models") as resp:
            listing = await resp.json()
        first = listing["data"][0]
        self.model, self.max_model_len = first["id"], int(first["max_model_len"])

    async def count(self, content: str) -> int:
        """Prompt tokens of one user message with this content (the chat template included)."""
        body = {"model": self.model, "messages": [{"role": "user", "content": content}]}
        async with self.session.post(f"{self.root}/tokenize", json=body) as resp:
            resp.raise_for_status()
            return int((await resp.json())["count"])

    async def fit(self, tokens: int) -> list[dict[str, str]]:
        """Messages whose prompt is exactly `tokens` tokens long (binary search on `/tokenize`
        over prefixes of "a a a …": each character adds at most one token)."""
        text = "a " * (4 * tokens + 16)
        low, high = 1, len(text)
        if await self.count(text) < tokens:
            raise RuntimeError(f"cannot build a prompt of {tokens} tokens")
        while low < high:
            middle = (low + high) // 2
            if await self.count(text[:middle]) < tokens:
                low = middle + 1
            else:
                high = middle
        if await self.count(text[:low]) != tokens:
            raise RuntimeError(f"no prompt of exactly {tokens} tokens")
        return [{"role": "user", "content": text[:low]}]


def _chat(*, fit: int | None = None, **fields: Any) -> Callable[[Target], Awaitable[dict]]:
    """A chat body: the server's model, one user message, `max_tokens` 4, then `fields` (None
    leaves a field out; a callable is called with the target). `fit=n`: a prompt of exactly
    max_model_len + n tokens."""

    async def build(target: Target) -> dict[str, Any]:
        body: dict[str, Any] = {"model": target.model,
                                "messages": [{"role": "user", "content": USER}],
                                "max_tokens": 4}
        if fit is not None:
            body["messages"] = await target.fit(target.max_model_len + fit)
        for key, value in fields.items():
            if value is None:
                body.pop(key, None)
            else:
                body[key] = value(target) if callable(value) else value
        return body

    return build


CHAT = "/v1/chat/completions"
STREAM = {"stream": True, "stream_options": {"include_usage": True}}
PROBES: tuple[Probe, ...] = (
    Probe("health", "GET", "/health"),
    Probe("version", "GET", "/version"),
    Probe("models", "GET", "/v1/models"),
    Probe("tokenize", "POST", "/tokenize", _chat(max_tokens=None, messages=[
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"}])),
    Probe("tokenize_prompt", "POST", "/tokenize",
          _chat(max_tokens=None, messages=None, prompt="hello there", add_special_tokens=False)),
    Probe("chat_stream", "POST", CHAT, _chat(temperature=0, **STREAM)),
    Probe("chat_stream_without_usage", "POST", CHAT, _chat(stream=True)),
    Probe("chat", "POST", CHAT, _chat(temperature=0)),
    # Prompt + max_tokens over the context is no error: max_tokens is capped (finish "length").
    Probe("chat_capped_by_context", "POST", CHAT, _chat(fit=-3, max_tokens=100)),
    # Accepted by vLLM (the fake echoes the last user message: it has one, so both say "length").
    Probe("chat_custom_role", "POST", CHAT, _chat(messages=[
        {"role": "wizard", "content": "hi"}, {"role": "user", "content": USER}])),
    Probe("chat_without_model", "POST", CHAT, _chat(model=None)),
    Probe("chat_without_content", "POST", CHAT, _chat(messages=[
        {"role": "user"}, {"role": "user", "content": USER}])),
    Probe("error_prompt_too_long", "POST", CHAT, _chat(fit=1, **STREAM)),
    # vLLM refuses, before tokenizing, a prompt longer than max_model_len × its longest token.
    Probe("error_prompt_too_many_characters", "POST", CHAT,
          _chat(messages=lambda t: [{"role": "user", "content": "a" * (64 * t.max_model_len)}])),
    Probe("error_prompt_fills_context", "POST", CHAT, _chat(fit=0)),
    Probe("error_max_tokens_over_context", "POST", CHAT,
          _chat(max_tokens=lambda t: t.max_model_len + 88)),
    Probe("error_unknown_model", "POST", CHAT, _chat(model="nope", **STREAM)),
    Probe("error_unknown_model_tokenize", "POST", "/tokenize",
          _chat(model="nope", max_tokens=None)),
    Probe("error_temperature_negative", "POST", CHAT, _chat(temperature=-1)),
    Probe("error_temperature_too_high", "POST", CHAT, _chat(temperature=5)),
    Probe("error_temperature_not_a_number", "POST", CHAT, _chat(temperature="hot")),
    Probe("error_max_tokens_zero", "POST", CHAT, _chat(max_tokens=0)),
    Probe("error_max_tokens_negative", "POST", CHAT, _chat(max_tokens=-1)),
    Probe("error_max_completion_tokens_zero", "POST", CHAT,
          _chat(max_tokens=None, max_completion_tokens=0)),
    Probe("error_max_tokens_fraction", "POST", CHAT, _chat(max_tokens=8.5)),
    Probe("error_messages_not_a_list", "POST", CHAT, _chat(messages="hi")),
    Probe("error_messages_empty", "POST", CHAT, _chat(messages=[])),
    Probe("error_messages_missing", "POST", CHAT, _chat(messages=None)),
    Probe("error_content_not_text", "POST", CHAT,
          _chat(messages=[{"role": "user", "content": 42}])),
    Probe("error_message_without_role", "POST", CHAT, _chat(messages=[{"content": "hi"}])),
    Probe("error_stream_options_without_stream", "POST", CHAT,
          _chat(stream_options={"include_usage": True})),
    Probe("error_body_not_json", "POST", CHAT, "{not json", raw=True),
    Probe("error_body_not_an_object", "POST", CHAT, "[]", raw=True),
    # Speculative decoding refuses logit_bias: inside a 200 stream, and as a plain 400.
    Probe("error_in_stream", "POST", CHAT, _chat(logit_bias={"2": 5}, **STREAM)),
    Probe("error_logit_bias", "POST", CHAT, _chat(logit_bias={"2": 5})),
    Probe("metrics", "GET", "/metrics"),  # last: after all the traffic above
)
# For a server with a reasoning parser (`tests.bigram_models.thinking_model_dir` served with
# `--reasoning-parser deepseek_r1`): its answer whole and streamed, and cut by max_tokens while
# it still thinks.
REASONING_PROBES: tuple[Probe, ...] = (
    Probe("reasoning_stream", "POST", CHAT, _chat(temperature=0, max_tokens=48, **STREAM)),
    Probe("reasoning_stream_out_of_tokens", "POST", CHAT, _chat(temperature=0, max_tokens=3,
                                                                 **STREAM)),
    Probe("reasoning_chat", "POST", CHAT, _chat(temperature=0, max_tokens=48)),
    Probe("reasoning_chat_out_of_tokens", "POST", CHAT, _chat(temperature=0, max_tokens=3)),
)


async def _send(target: Target, probe: Probe) -> Exchange:
    body = probe.body
    if callable(body):
        body = await body(target)
    kwargs: dict[str, Any] = {}
    if probe.raw:
        kwargs = {"data": body, "headers": {"Content-Type": "application/json"}}
    elif body is not None:
        kwargs = {"json": body}
    url = f"{target.root}{probe.path}"
    async with target.session.request(probe.method, url, **kwargs) as resp:
        text = (await resp.read()).decode()
        return Exchange(probe.name, probe.method, probe.path, body, resp.status,
                        resp.headers.get("Content-Type"), text)


async def record(root: str, probes: tuple[Probe, ...] = PROBES) -> dict[str, Exchange]:
    """Send every probe, in order, to the server at `root` (e.g. http://127.0.0.1:8000)."""
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        target = Target(session, root)
        await target.load()
        return {probe.name: await _send(target, probe) for probe in probes}


def _abbreviated(value: Any) -> Any:
    if isinstance(value, str) and len(value) > ABBREVIATE:
        return f"{value[:40]}…<{len(value)} characters>"
    if isinstance(value, list):
        return [_abbreviated(v) for v in value]
    if isinstance(value, dict):
        return {k: _abbreviated(v) for k, v in value.items()}
    return value


def write(exchanges: dict[str, Exchange], out: Path, about: dict[str, Any]) -> None:
    """One `<name>.json` per exchange (the JSON body inline, other bodies in `<name>.sse` or
    `<name>.txt`), and `about.json` describing the server."""
    out.mkdir(parents=True, exist_ok=True)
    for name, ex in exchanges.items():
        media = (ex.content_type or "").split(";")[0].strip()
        entry: dict[str, Any] = {"request": {"method": ex.method, "path": ex.path,
                                             "body": _abbreviated(ex.request)},
                                 "status": ex.status, "content_type": ex.content_type}
        if media == "application/json":
            entry["body"] = ex.json()
        else:
            suffix = RAW_SUFFIX.get(media, ".txt")
            (out / f"{name}{suffix}").write_text(ex.body)
            entry["body_file"] = f"{name}{suffix}"
        (out / f"{name}.json").write_text(json.dumps(entry, indent=1, ensure_ascii=False) + "\n")
    (out / "about.json").write_text(json.dumps(about, indent=1) + "\n")


def load(directory: Path) -> dict[str, Exchange]:
    """The exchanges written by `write` (bodies as raw text again)."""
    found: dict[str, Exchange] = {}
    for path in sorted(directory.glob("*.json")):
        if path.name == "about.json":
            continue
        entry = json.loads(path.read_text())
        if "body_file" in entry:
            body = (directory / entry["body_file"]).read_text()
        else:
            body = json.dumps(entry["body"])
        request = entry["request"]
        found[path.stem] = Exchange(path.stem, request["method"], request["path"],
                                    request["body"], entry["status"], entry["content_type"], body)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.vllm_real.recording",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the server's root URL")
    parser.add_argument("--out", type=Path, required=True, help="directory to write")
    parser.add_argument("--about", default="{}", type=json.loads,
                        help="JSON merged into about.json (e.g. how the server was started)")
    args = parser.parse_args(argv)
    exchanges = asyncio.run(record(args.url))
    version = exchanges["version"].json().get("version")
    write(exchanges, args.out, {"vllm_version": version, **args.about})
    print(f"{len(exchanges)} exchanges from vLLM {version} written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
