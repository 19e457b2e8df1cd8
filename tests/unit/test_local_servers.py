"""Model servers on their usual ports, and the catalogue lines offered for them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from inference.catalogue import load_catalogue, parse_catalogue
from inference.keys import KeyRing
from inference.local_servers import catalogue_entries, catalogue_lines, detect_local_servers
from inference.reachability import diagnose
from tests.fakes.local_servers import FakeLocalServer, html_page
from tests.fakes.openai_api import FakeModelServer
from tests.unit.test_reachability import closed_port

pytestmark = pytest.mark.timeout(20)
EXAMPLE = Path(__file__).resolve().parents[2] / "models.example.yaml"


@pytest.fixture
async def ollama() -> AsyncIterator[FakeLocalServer]:
    async with FakeLocalServer("ollama", ["llama3.2:latest", "qwen2.5:7b", "nomic-embed-text"
                                          ":latest", "phi4:latest"]) as server:
        yield server


@pytest.fixture
async def llama_cpp() -> AsyncIterator[FakeLocalServer]:
    async with FakeLocalServer("llama.cpp", ["/models/Llama-3.2-3B-Instruct-Q4_K_M.gguf"]) as s:
        yield s


@pytest.fixture
async def vllm() -> AsyncIterator[FakeModelServer]:
    async with FakeModelServer({"Qwen/Qwen2.5-1.5B-Instruct": 32768}) as server:
        yield server


@pytest.fixture
async def web_page() -> AsyncIterator[int]:
    """Something else on a usual port: a web server answering HTML to everything."""
    async with html_page() as port:
        yield port


def port_of(server: FakeModelServer) -> int:
    return int(server.root.rsplit(":", 1)[1])


async def test_servers_on_their_ports_are_found_with_their_models(
        ollama, llama_cpp, vllm, web_page) -> None:
    ports = [("ollama", ollama.port), ("llama.cpp", llama_cpp.port), ("vllm", port_of(vllm)),
             ("vllm", closed_port()), ("llama.cpp", web_page)]
    found = await detect_local_servers(ports=ports, wait=1.0)
    assert [(s.kind, s.base_url) for s in found] == [
        ("ollama", f"http://127.0.0.1:{ollama.port}/v1"),
        ("llama.cpp", f"http://127.0.0.1:{llama_cpp.port}/v1"),
        ("vllm", vllm.base_url)]
    assert [m.name for m in found[0].models] == ollama.models
    assert [m.name for m in found[1].models] == llama_cpp.models
    assert [(m.name, m.context_window) for m in found[2].models] == [
        ("Qwen/Qwen2.5-1.5B-Instruct", 32768)]  # vLLM's max_model_len
    assert ollama.paths == ["/v1/models"]


async def test_nothing_found_when_nothing_listens() -> None:
    assert await detect_local_servers(ports=[("ollama", closed_port())], wait=0.5) == []


async def test_pasted_lines_load_with_the_example_catalogue_and_reach_their_models(
        tmp_path, ollama, llama_cpp, vllm) -> None:
    ports = [("ollama", ollama.port), ("llama.cpp", llama_cpp.port), ("vllm", port_of(vllm))]
    servers = await detect_local_servers(ports=ports, wait=1.0)
    example = load_catalogue(EXAMPLE)
    entries = catalogue_entries(servers, [m.id for m in example.models])
    lines = catalogue_lines(entries)
    # Pasted under `models:` of the example file, as the guide says.
    text = EXAMPLE.read_text(encoding="utf-8")
    assert text.count("\nmodels:\n") == 1
    pasted = tmp_path / "models.yaml"
    pasted.write_text(text.replace("\nmodels:\n", "\nmodels:\n" + lines, 1), encoding="utf-8")
    catalogue = load_catalogue(pasted)
    new = [m for m in catalogue.models if m.id not in {e.id for e in example.models}]
    assert [(m.id, m.backend, m.base_url, m.model) for m in new] == [
        ("llama3.2-2", "openai", servers[0].base_url, "llama3.2:latest"),  # llama3.2 is taken
        ("qwen2.5-7b-2", "openai", servers[0].base_url, "qwen2.5:7b"),
        ("nomic-embed-text", "openai", servers[0].base_url, "nomic-embed-text:latest"),
        ("Llama-3.2-3B-Instruct-Q4_K_M", "openai", servers[1].base_url,
         llama_cpp.models[0]),
        ("Qwen2.5-1.5B-Instruct", "vllm", vllm.base_url, "Qwen/Qwen2.5-1.5B-Instruct")]
    assert new[-1].context_window == 32768
    assert new[0].title == "llama3.2:latest (Ollama)"
    # And each pasted entry is reachable as written.
    verdicts = await diagnose(new, KeyRing.from_catalogue(catalogue, {}), wait=1.0)
    assert [v.reason for v in verdicts] == ["ok"] * len(new)


def test_lines_are_list_items_indented_for_models() -> None:
    lines = catalogue_lines([{"id": "a", "base_url": "http://127.0.0.1:8080/v1", "model": "m"}])
    assert lines == ("  - id: a\n    base_url: http://127.0.0.1:8080/v1\n    model: m\n")
    assert yaml.safe_load(lines) == [{"id": "a", "base_url": "http://127.0.0.1:8080/v1",
                                      "model": "m"}]


def test_odd_served_names_become_valid_unique_ids() -> None:
    from inference.local_servers import LocalServer, ServedModel

    names = ["_weird name!", "x" * 120, "org/model:latest", "org/model", "::"]
    server = LocalServer("llama.cpp", "http://127.0.0.1:8080/v1",
                         tuple(ServedModel(n) for n in names))
    entries = catalogue_entries([server], per_server=10)
    ids = [e["id"] for e in entries]
    assert len(set(ids)) == len(ids)
    parse_catalogue({"default_model": ids[0], "models": entries})  # every id is valid
