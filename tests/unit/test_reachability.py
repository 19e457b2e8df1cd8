"""Why a catalogue model cannot answer (inference/reachability.py), against fake servers."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from inference.catalogue import Catalogue, parse_catalogue
from inference.keys import KeyRing
from inference.reachability import check_model, diagnose, serves
from tests.fakes.local_servers import html_page
from tests.fakes.openai_api import FakeModelServer

pytestmark = pytest.mark.timeout(20)
KEY = "sk-secret-value-123"


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def catalogue(*entries: dict[str, Any]) -> Catalogue:
    return parse_catalogue({"default_model": entries[0]["id"], "models": list(entries)})


def keys_for(cat: Catalogue, **env: str) -> KeyRing:
    return KeyRing.from_catalogue(cat, env)


@pytest.fixture
async def server() -> AsyncIterator[FakeModelServer]:
    async with FakeModelServer({"qwen-served": 32768, "other": 4096}, api_key=KEY,
                               flavour="openai") as fake:
        yield fake


@pytest.fixture
async def silent_server() -> AsyncIterator[str]:
    """Accepts connections and requests, never answers: a base URL."""
    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response()

    app = web.Application()
    app.router.add_get("/{tail:.*}", hang)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    await runner.cleanup()


def entry(model_id: str, base_url: str, model: str = "qwen-served", **more: Any) -> dict:
    return {"id": model_id, "base_url": base_url, "model": model, **more}


async def test_a_missing_key_is_named_and_nothing_is_sent(server) -> None:
    cat = catalogue(entry("q", server.base_url, api_key_env="QWEN_KEY"))
    [verdict] = await diagnose(cat.models, keys_for(cat, QWEN_KEY=""))
    assert (verdict.reason, verdict.detail, verdict.reachable) == ("no_key", "QWEN_KEY", False)
    assert server.requests == []


async def test_a_reachable_model_with_its_key(server) -> None:
    cat = catalogue(entry("q", server.base_url, api_key_env="QWEN_KEY"))
    [verdict] = await diagnose(cat.models, keys_for(cat, QWEN_KEY=KEY))
    assert verdict.reachable, verdict
    assert [r.path for r in server.requests] == ["/v1/models"]
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"


async def test_a_rejected_key_names_the_variable_never_the_value(server) -> None:
    cat = catalogue(entry("q", server.base_url, api_key_env="QWEN_KEY"))
    [verdict] = await diagnose(cat.models, keys_for(cat, QWEN_KEY="sk-wrong-key"))
    assert (verdict.reason, verdict.detail) == ("key_rejected", "QWEN_KEY")
    assert "sk-wrong-key" not in repr(verdict)


async def test_a_closed_port_is_connection_refused() -> None:
    port = closed_port()
    cat = catalogue(entry("q", f"http://127.0.0.1:{port}/v1"))
    [verdict] = await diagnose(cat.models, keys_for(cat))
    assert (verdict.reason, verdict.detail) == ("refused", f"127.0.0.1:{port}")


async def test_an_unknown_host_is_a_dns_failure() -> None:
    cat = catalogue(entry("q", "http://no-such-host.invalid:8000/v1"))
    [verdict] = await diagnose(cat.models, keys_for(cat), wait=2.0)
    assert (verdict.reason, verdict.detail) == ("dns", "no-such-host.invalid:8000")


async def test_a_silent_server_times_out_within_the_bound(silent_server) -> None:
    cat = catalogue(entry("q", silent_server))
    started = time.monotonic()
    [verdict] = await diagnose(cat.models, keys_for(cat), wait=0.3)
    assert verdict.reason == "timeout"
    assert time.monotonic() - started < 2.0


async def test_a_server_not_serving_the_model_lists_what_it_has(server) -> None:
    cat = catalogue(entry("q", server.base_url, model="llama-3", api_key_env="QWEN_KEY"))
    [verdict] = await diagnose(cat.models, keys_for(cat, QWEN_KEY=KEY))
    assert (verdict.reason, verdict.detail) == ("unknown_model", "llama-3")
    assert verdict.served == ("qwen-served", "other")


async def test_a_replica_set_is_reachable_through_any_replica(server) -> None:
    down = f"http://127.0.0.1:{closed_port()}/v1"
    cat = catalogue(entry("q", down, backend="vllm", replicas=[server.base_url],
                          api_key_env="QWEN_KEY"))
    [verdict] = await diagnose(cat.models, keys_for(cat, QWEN_KEY=KEY))
    assert verdict.reachable
    cat = catalogue(entry("q", down, backend="vllm", replicas=[down.replace("/v1", "/x/v1")]))
    [verdict] = await diagnose(cat.models, keys_for(cat))
    assert verdict.reason == "refused"


async def test_models_are_checked_at_once_in_catalogue_order(server, silent_server) -> None:
    cat = catalogue(*(entry(f"slow{i}", silent_server) for i in range(4)),
                    entry("fine", server.base_url, api_key_env="QWEN_KEY"))
    started = time.monotonic()
    verdicts = await diagnose(cat.models, keys_for(cat, QWEN_KEY=KEY), wait=0.5)
    assert time.monotonic() - started < 1.8  # not 4 × 0.5 s one after another
    assert [v.model_id for v in verdicts] == ["slow0", "slow1", "slow2", "slow3", "fine"]
    assert [v.reason for v in verdicts] == ["timeout"] * 4 + ["ok"]


async def test_local_models_need_the_engine_and_their_files(tmp_path, monkeypatch) -> None:
    (tmp_path / "target").mkdir()
    cat = catalogue({"id": "here", "backend": "hf", "path": str(tmp_path / "target")},
                    {"id": "gone", "backend": "hf", "path": str(tmp_path / "target"),
                     "draft_path": str(tmp_path / "missing-draft")})
    keys = keys_for(cat)
    assert (await check_model(cat.models[0], keys)).reachable
    gone = await check_model(cat.models[1], keys)
    assert (gone.reason, gone.detail) == ("no_files", str(tmp_path / "missing-draft"))
    monkeypatch.setattr("inference.local.engine_installed", lambda: False)
    assert (await check_model(cat.models[0], keys)).reason == "no_engine"


def test_ollama_answers_to_a_name_without_its_tag() -> None:
    assert serves(["llama3.2:latest"], "llama3.2")
    assert serves(["llama3.2:latest"], "llama3.2:latest")
    assert not serves(["llama3.2:1b"], "llama3.2")
    assert not serves(["qwen"], "qwen-served")


async def test_a_web_page_is_not_an_openai_compatible_server() -> None:
    async with html_page("<html>router login</html>") as port:
        cat = catalogue(entry("q", f"http://127.0.0.1:{port}/v1"))
        [verdict] = await diagnose(cat.models, keys_for(cat))
        assert (verdict.reason, verdict.detail) == ("http_error", f"127.0.0.1:{port}")
