"""The first-run guide: `chatmux run` with the example catalogue and no reachable model says
why each model cannot answer and how to connect one, in the console and to admins on /start."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from tests.e2e.processes import CHATMUX, base_env
from tests.fakes.local_servers import FakeLocalServer
from tests.harness import running_bot
from tests.unit.test_reachability import closed_port

EXAMPLE = Path(__file__).resolve().parents[2] / "models.example.yaml"
ADMIN = 777
USER = 888
TITLE = "⚠️ No model can answer yet."


async def console(tmp_path: Path, typed: bytes, **env: str) -> tuple[int | None, str, str]:
    process = await asyncio.create_subprocess_exec(
        CHATMUX, "run", cwd=tmp_path, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    stdout, stderr = await asyncio.wait_for(process.communicate(typed), 60)
    return process.returncode, stdout.decode(), stderr.decode()


async def test_the_console_guides_a_first_run_of_the_example_catalogue(tmp_path) -> None:
    """The README's set-up (`cp models.example.yaml models.yaml`) with no key and no server:
    the local entries point at ports nothing listens on, so the test does not depend on what
    runs on this machine's 8000 and 11434."""
    vllm_port, ollama_port = closed_port(), closed_port()
    text = EXAMPLE.read_text(encoding="utf-8")
    assert "http://localhost:8000/v1" in text and "http://localhost:11434/v1" in text
    (tmp_path / "models.yaml").write_text(
        text.replace("localhost:8000", f"127.0.0.1:{vllm_port}")
            .replace("localhost:11434", f"127.0.0.1:{ollama_port}"), encoding="utf-8")
    env = base_env(LANG="en_US.UTF-8")
    env.pop("OPENAI_API_KEY", None)
    code, out, err = await console(tmp_path, b"/start\n", **env)
    assert code == 0, err
    assert "Traceback" not in err
    lines = out.splitlines()
    banner = next(i for i, line in enumerate(lines) if line.startswith("chatmux console"))
    assert lines[banner + 1] == f"{TITLE} The models in models.yaml:"
    assert lines[banner + 2:banner + 5] == [
        "• GPT-4o mini (gpt-4o-mini): no API key: set OPENAI_API_KEY",
        f"• Qwen 2.5 7B (vLLM) (qwen2.5-7b): connection refused at 127.0.0.1:{vllm_port} "
        "(is the server running?)",
        f"• Llama 3.2 3B (Ollama) (llama3.2): connection refused at 127.0.0.1:{ollama_port} "
        "(is the server running?)"]
    assert "“export OPENAI_API_KEY=…”" in out
    assert out.index(TITLE) < out.index("you › /start") < out.index("Hi, You!")
    assert out.count(TITLE) == 1  # the console user is no admin: /start does not repeat it


async def test_the_console_speaks_the_terminal_language_and_is_quiet_when_a_model_answers(
        tmp_path, models) -> None:
    from tests.harness import write_catalogue

    write_catalogue(tmp_path / "models.yaml", models)
    env = base_env(LANG="ru_RU.UTF-8", ALPHA_KEY="sk-test-alpha")
    code, out, err = await console(tmp_path, b"/start\n", **env)
    assert code == 0, err
    assert "Пока ни одна модель" not in out and TITLE not in out
    (tmp_path / "chatmux.db").unlink()
    write_catalogue(tmp_path / "models.yaml", models, alpha={"api_key_env": "MISSING_KEY"},
                    beta={"model": "gamma-served"})
    code, out, err = await console(tmp_path, b"", **env)
    assert code == 0, err
    assert "⚠️ Пока ни одна модель не может ответить." in out
    assert "• Alpha (alpha): нет API-ключа: задайте MISSING_KEY" in out
    assert ("• Beta (beta): неизвестная модель «gamma-served»; на сервере есть: alpha-served, "
            "beta-served") in out


@pytest.fixture
async def ollama():
    async with FakeLocalServer("ollama", ["llama3.2:latest", "phi4:latest"]) as server:
        yield server


async def test_admin_start_shows_the_guide_with_lines_to_paste_others_never(
        monkeypatch, tmp_path, telegram, models, database_url, redis_prefix, ollama) -> None:
    monkeypatch.setattr("inference.local_servers.USUAL_PORTS", (("ollama", ollama.port),))
    down = f"http://127.0.0.1:{closed_port()}/v1"
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix,
                           catalogue_overrides={"alpha": {"base_url": down},
                                                "beta": {"api_key_env": "BETA_KEY"}},
                           ADMIN_IDS=str(ADMIN)):
        telegram.user_sends("/start", chat_id=USER)
        [greeting] = await telegram.wait_for_bot_messages(USER, 1, timeout=15)
        assert greeting.text.startswith("Hi, ")
        telegram.user_sends("/start", chat_id=ADMIN)
        greeting, guide = await telegram.wait_for_bot_messages(ADMIN, 2, timeout=15)
        assert greeting.text.startswith("Hi, ")
        assert guide.text.startswith(TITLE)
        host = down.removeprefix("http://").removesuffix("/v1")
        assert f"• Alpha (alpha): connection refused at {host}" in guide.text
        assert "• Beta (beta): no API key: set BETA_KEY" in guide.text
        assert f"Ollama at http://127.0.0.1:{ollama.port}/v1 (llama3.2:latest, phi4:latest)" \
            in guide.text
        [pre] = [e for e in guide.entities if e["type"] == "pre"]
        block = guide.text.encode("utf-16-le")[2 * pre["offset"]:2 * (pre["offset"]
                                                                     + pre["length"])]
        pasted = yaml.safe_load(block.decode("utf-16-le"))
        assert [(e["id"], e["model"]) for e in pasted] == [("llama3.2", "llama3.2:latest"),
                                                          ("phi4", "phi4:latest")]
        assert "sk-test-alpha" not in guide.text
        # Another /start within the cache's time: the same guide, no second probe.
        telegram.user_sends("/start", chat_id=ADMIN)
        messages = await telegram.wait_for_bot_messages(ADMIN, 4, timeout=15)
        assert messages[3].text == guide.text
        assert ollama.paths == ["/v1/models"]
        # The user's /start was answered long before: it had no guide.
        assert [m.text[:3] for m in telegram.bot_messages(USER)] == ["Hi,"]


async def test_admin_start_is_plain_when_a_model_answers(
        monkeypatch, tmp_path, telegram, models, database_url, redis_prefix) -> None:
    monkeypatch.setattr("inference.local_servers.USUAL_PORTS", ())
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix,
                           ADMIN_IDS=str(ADMIN)):
        telegram.user_sends("/start", chat_id=ADMIN)
        telegram.user_sends("/help", chat_id=ADMIN)
        messages = await telegram.wait_for_bot_messages(ADMIN, 2, timeout=15)
        await asyncio.sleep(0.5)
        assert not any(m.text.startswith(TITLE) for m in telegram.bot_messages(ADMIN))
        assert len(messages) == 2


async def test_pool_agents_are_counted_from_their_signed_heartbeats(redis_prefix) -> None:
    """The counter behind "no pool agent is running": real Redis, the agents' own reporter."""
    from redis.asyncio import Redis

    from bot.firstrun import pool_agents_counter
    from bot.settings import Settings
    from inference.pool.gpus import GpuPool
    from inference.pool.protocol import PoolAuth, PoolKeys
    from inference.pool.reporting import Reporter
    from tests.services import REDIS_URL

    secret = "s" * 32
    settings = Settings(redis_prefix=redis_prefix, pool_secret=secret)
    redis = Redis.from_url(REDIS_URL)
    try:
        assert pool_agents_counter(None, settings) is None
        assert pool_agents_counter(redis, Settings(redis_prefix=redis_prefix)) is None
        count = pool_agents_counter(redis, settings)
        assert count is not None and await count() == 0
        reporter = Reporter(redis, PoolKeys(redis_prefix), PoolAuth(secret), "gpu1", "10.0.0.1")
        await reporter.heartbeat(GpuPool([0, 1]), 0)
        assert await count() == 1
        forged = Reporter(redis, PoolKeys(redis_prefix), PoolAuth("x" * 32), "evil", "10.0.0.2")
        await forged.heartbeat(GpuPool([0]), 0)
        assert await count() == 1  # a heartbeat not signed with our secret does not count
        await reporter.leave()
        assert await count() == 0
    finally:
        await redis.aclose()
