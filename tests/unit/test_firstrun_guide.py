"""The first-run guide's text (bot/firstrun.py) and the cached check behind it."""

from __future__ import annotations

import asyncio

import pytest
import yaml

from bot.firstrun import MESSAGE_LIMIT, first_run_guide
from bot.texts import LANGUAGES
from inference.catalogue import parse_catalogue
from inference.first_run import FirstRunCheck, FirstRunReport
from inference.keys import KeyRing
from inference.local_servers import LocalServer, ServedModel
from inference.reachability import Verdict
from inference.registry import ModelRegistry
from tests.fakes.local_servers import FakeLocalServer
from tests.fakes.openai_api import FakeModelServer
from tests.unit.test_reachability import closed_port

pytestmark = pytest.mark.timeout(20)

VERDICTS = (
    Verdict("gpt-4o-mini", "GPT-4o mini", "no_key", "OPENAI_API_KEY"),
    Verdict("qwen", "Qwen", "refused", "localhost:8000"),
    Verdict("llama3.2", "Llama", "unknown_model", "llama3.2", ("phi4:latest", "qwen2.5:7b")),
    Verdict("far", "Far", "dns", "gpu1.lab:8000"),
    Verdict("slow", "Slow", "timeout", "10.0.0.5:8000"),
    Verdict("local", "Local", "no_files", "/models/missing"),
)
OLLAMA = LocalServer("ollama", "http://127.0.0.1:11434/v1",
                     (ServedModel("llama3.2:latest"), ServedModel("phi4:latest")))


def shown(report: FirstRunReport, lang: str = "en") -> tuple[str, list]:
    kwargs = first_run_guide(report, lang, "models.yaml", 2.0).as_kwargs()
    return kwargs["text"], kwargs["entities"]


def test_each_model_has_its_reason_and_the_fix() -> None:
    text, entities = shown(FirstRunReport(VERDICTS, (), ("gpt-4o-mini",)))
    lines = text.splitlines()
    assert lines[0] == "⚠️ No model can answer yet. The models in models.yaml:"
    assert lines[1:7] == [
        "• GPT-4o mini (gpt-4o-mini): no API key: set OPENAI_API_KEY",
        "• Qwen (qwen): connection refused at localhost:8000 (is the server running?)",
        "• Llama (llama3.2): unknown model “llama3.2”; the server has: phi4:latest, qwen2.5:7b",
        "• Far (far): host not found: gpu1.lab:8000",
        "• Slow (slow): no answer from 10.0.0.5:8000 within 2 s",
        "• Local (local): no model directory at /models/missing"]
    assert "“export OPENAI_API_KEY=…”" in text
    assert "none answers on the usual ports (Ollama 11434, llama.cpp 8080, vLLM 8000)" in text
    assert entities == []


def test_a_found_server_comes_with_lines_to_paste() -> None:
    text, [pre] = shown(FirstRunReport(VERDICTS, (OLLAMA,), ("llama3.2",)))
    assert "Ollama at http://127.0.0.1:11434/v1 (llama3.2:latest, phi4:latest)" in text
    assert pre.type == "pre" and pre.language == "yaml"
    block = text.encode("utf-16-le")[2 * pre.offset: 2 * (pre.offset + pre.length)]
    pasted = yaml.safe_load(block.decode("utf-16-le"))
    assert [e["model"] for e in pasted] == ["llama3.2:latest", "phi4:latest"]
    assert pasted[0]["id"] == "llama3.2-2"  # the catalogue's llama3.2 is taken
    parse_catalogue({"default_model": pasted[0]["id"], "models": pasted})


@pytest.mark.parametrize("lang", LANGUAGES)
def test_a_huge_report_still_fits_one_message(lang: str) -> None:
    long = "x" * 200
    verdicts = tuple(Verdict(f"m{i}", "T" * 60, "unknown_model", long, (long,) * 3)
                     for i in range(60))
    servers = tuple(LocalServer(kind, f"http://127.0.0.1:{port}/v1",
                                tuple(ServedModel(f"{long}{j}") for j in range(50)))
                    for kind, port in (("ollama", 11434), ("llama.cpp", 8080), ("vllm", 8000)))
    text, entities = shown(FirstRunReport(verdicts, servers, ()), lang)
    assert len(text.encode("utf-16-le")) // 2 <= MESSAGE_LIMIT
    assert "m0" in text and entities  # still the models and something to paste


def registry_of(*entries: dict) -> ModelRegistry:
    catalogue = parse_catalogue({"default_model": entries[0]["id"], "models": list(entries)})
    return ModelRegistry(catalogue, KeyRing.from_catalogue(catalogue, {}))


async def test_the_check_is_shared_and_reused_for_its_ttl() -> None:
    async with FakeModelServer({"served": 4096}) as server, \
            FakeLocalServer("ollama", ["llama3.2:latest"]) as ollama:
        registry = registry_of({"id": "a", "base_url": server.base_url, "model": "served"},
                               {"id": "b", "base_url": f"http://127.0.0.1:{closed_port()}/v1",
                                "model": "x"})
        check = FirstRunCheck(registry, ttl=60, timeout=1.0, ports=[("ollama", ollama.port)])
        first, second = await asyncio.gather(check.report(), check.report())
        assert first is second and first.any_reachable
        assert [v.reason for v in first.verdicts] == ["ok", "refused"]
        assert [s.kind for s in first.servers] == ["ollama"]
        assert await check.report() is first
        assert len(server.requests) == 1 and ollama.paths == ["/v1/models"]
        check.ttl = 0.0
        await asyncio.sleep(0.01)
        assert await check.report() is not first  # older than its ttl: checked again
        assert len(server.requests) == 2
        await check.aclose()
        await registry.aclose()


async def test_nothing_reachable_when_every_model_fails() -> None:
    registry = registry_of({"id": "b", "base_url": f"http://127.0.0.1:{closed_port()}/v1",
                            "model": "x"})
    check = FirstRunCheck(registry, timeout=0.5, ports=[])
    report = await check.report()
    assert not report.any_reachable and report.servers == ()
    assert report.taken_ids == ("b",)


async def test_a_pool_model_without_a_live_agent_says_so() -> None:
    from inference.registry import Override

    down = f"http://127.0.0.1:{closed_port()}/v1"
    registry = registry_of({"id": "file-vllm", "backend": "vllm", "base_url": down,
                            "model": "x", "speculative": {"draft": "d"}})
    launched = {"title": "Pool", "backend": "vllm", "base_url": down, "model": "org/target",
                "speculative": {"method": "draft_model", "draft": "org/draft",
                                "num_speculative_tokens": 4}}
    added = {"title": "Added", "base_url": down, "model": "y"}  # /addmodel url=…
    registry.apply([Override("pool", launched), Override("added", added)])
    agents = [0]
    asked: list[int] = []

    async def alive() -> int:
        asked.append(1)
        return agents[0]

    check = FirstRunCheck(registry, timeout=0.5, ports=[], pool_agents=alive)
    report = await check.report()
    assert [(v.model_id, v.reason) for v in report.verdicts] == [
        ("file-vllm", "refused"), ("pool", "no_pool_agent"), ("added", "refused")]
    text, _ = shown(report)
    assert "• Pool (pool): launched on the GPU pool, but no pool agent is running" in text
    agents[0] = 1
    check = FirstRunCheck(registry, timeout=0.5, ports=[], pool_agents=alive)
    assert [v.reason for v in (await check.report()).verdicts] == ["refused"] * 3
    assert len(asked) == 2
    await registry.aclose()


def test_a_server_with_no_model_loaded_is_named_with_what_to_do() -> None:
    empty = LocalServer("ollama", "http://127.0.0.1:11434/v1", ())
    text, entities = shown(FirstRunReport(VERDICTS, (empty,), ()))
    assert ("• a model server on this machine: Ollama at http://127.0.0.1:11434/v1 (no models "
            "loaded). Load a model into it") in text
    assert "none answers on the usual ports" not in text and entities == []
