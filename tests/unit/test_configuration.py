"""Settings and catalogue: bad configuration is one clear line, never a traceback."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bot.settings import ConfigError, load_settings
from inference.catalogue import CatalogueError, load_catalogue

GOOD = {
    "default_model": "a",
    "models": [
        {"id": "a", "title": "A", "base_url": "http://localhost:8000/v1", "model": "m"},
        {"id": "b", "title": "B", "base_url": "https://api.example.com/v1", "model": "n",
         "api_key_env": "B_KEY", "params": {"temperature": 0.3, "max_tokens": 100}},
    ],
}


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def test_example_catalogue_is_valid():
    catalogue = load_catalogue(Path(__file__).parents[2] / "models.example.yaml")
    backends = {m.base_url.split("/")[2] for m in catalogue.models}
    assert len(catalogue.models) == 4 and "api.openai.com" in backends
    assert catalogue.get(catalogue.default_model) is not None
    assert [m.id for m in catalogue.models if m.transcription] == ["whisper"]
    assert [m.id for m in catalogue.models if m.vision] == ["gpt-4o-mini"]


def test_good_catalogue(tmp_path):
    catalogue = load_catalogue(write(tmp_path, GOOD))
    assert catalogue.get("b").params.as_request() == {"temperature": 0.3, "max_tokens": 100}


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["models"][1].pop("base_url"), "models[1] (id 'b') → base_url: Field required"),
        (lambda d: d["models"][0].update(params={"temperature": 5}),
         "models[0] (id 'a') → params.temperature"),
        (lambda d: d.update(default_model="zzz"), "default_model 'zzz' is not one of the models"),
        (lambda d: d["models"][1].update(id="a"), "model id 'a' is used twice"),
        (lambda d: d["models"][0].update(backend="mystery"), "models[0] (id 'a') → backend"),
        (lambda d: d["models"][0].update(api_key="sk-123"), "models[0] (id 'a') → api_key"),
    ],
)
def test_invalid_catalogue_names_entry_and_field(tmp_path, mutate, expected):
    data = yaml.safe_load(yaml.safe_dump(GOOD))
    mutate(data)
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(write(tmp_path, data))
    message = str(caught.value)
    assert expected in message and "\n" not in message


def test_title_defaults_to_the_id(tmp_path):
    data = yaml.safe_load(yaml.safe_dump(GOOD))
    del data["models"][0]["title"]
    data["models"][1]["title"] = None  # `title:` with nothing after it
    catalogue = load_catalogue(write(tmp_path, data))
    assert [m.title for m in catalogue.models] == ["a", "b"]
    data["models"][0]["title"] = ""
    with pytest.raises(CatalogueError, match=r"models\[0\] \(id 'a'\) → title"):
        load_catalogue(write(tmp_path, data))


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(CatalogueError, match=r"not found: copy models\.example\.yaml"):
        load_catalogue(tmp_path / "nope.yaml")
    with pytest.raises(CatalogueError, match="not valid YAML at line"):
        load_catalogue(write(tmp_path, "models: [\n  - id: a\n    title: [unclosed\n"))


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"DATABASE_URL": "postgresql://db/x"}, "DATABASE_URL must use the async driver"),
        ({"DATABASE_URL": "mysql+aiomysql://db/x"}, "DATABASE_URL must be postgresql+asyncpg"),
        ({"ADMIN_IDS": "12,abc"}, "ADMIN_IDS must be comma-separated Telegram user ids"),
        ({"BOT_TOKEN": "not-a-token"}, "BOT_TOKEN must look like"),
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL must look like redis://"),
        ({"TELEGRAM_API_URL": "api.telegram.org"}, "TELEGRAM_API_URL must be an http(s) URL"),
    ],
)
def test_bad_settings_are_one_line(monkeypatch, tmp_path, env, expected):
    monkeypatch.chdir(tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value).startswith(expected)


def test_settings_defaults_and_parsing(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("ADMIN_IDS=1, 2,3\nTELEGRAM_API_URL=http://127.0.0.1:8081/\n")
    settings = load_settings()
    assert settings.admin_ids == {1, 2, 3}
    assert settings.telegram_api_url == "http://127.0.0.1:8081"
    assert settings.database_url == "sqlite+aiosqlite:///chatmux.db"
    assert settings.redis_url is None and settings.bot_token is None


def test_cli_prints_one_line_and_exits_2_on_bad_config(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "bot", "run"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": "postgresql://x/y"},
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "chatmux: DATABASE_URL must use the async driver: postgresql+asyncpg://…"
    ]
    assert "Traceback" not in result.stderr


def test_cli_reports_an_unreachable_database(tmp_path):
    write(tmp_path, GOOD)
    result = subprocess.run(
        [sys.executable, "-m", "bot", "migrate"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin",
             "DATABASE_URL": "postgresql+asyncpg://nobody@127.0.0.1:9/none"},
    )
    assert result.returncode == 2
    assert "cannot migrate the database at 127.0.0.1:9/none" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_hf_model_without_the_local_extra_names_the_extra(tmp_path):
    catalogue = {"default_model": "local", "models": [
        {"id": "local", "title": "Local", "backend": "hf", "path": str(tmp_path / "ckpt")}]}
    write(tmp_path, catalogue)
    # Run as if torch were not installed.
    code = ("import sys; sys.modules['torch'] = None\n"
            "from bot.__main__ import main\nsys.exit(main(['run']))")
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/x.db"},
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "chatmux: model 'local': backend: hf needs the local engine: "
        "pip install 'chatmux[local]'")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("entry", "expected"), [
    ({"backend": "hf"}, "models[0] (id 'm') → path: Field required for backend hf"),
    ({"backend": "hf", "path": "/m", "base_url": "http://x/v1"},
     "models[0] (id 'm') → base_url: backend hf runs in this process"),
    ({"base_url": "http://x/v1", "model": "m", "path": "/m"},
     "models[0] (id 'm') → path: only backend hf takes path and draft_path"),
    ({"backend": "hf", "path": "/m", "dtype": "int3"}, "models[0] (id 'm') → dtype:"),
])
def test_hf_entries_are_checked(tmp_path, entry, expected):
    with pytest.raises(CatalogueError, match=re.escape(expected)):
        load_catalogue(write(tmp_path, {"default_model": "m", "models": [
            {"id": "m", "title": "M", **entry}]}))


def test_hf_entry_defaults(tmp_path):
    catalogue = load_catalogue(write(tmp_path, {"default_model": "m", "models": [
        {"id": "m", "title": "M", "backend": "hf", "path": "/models/qwen-0.5b"}]}))
    spec = catalogue.models[0]
    assert (spec.model, spec.urls, spec.device, spec.dtype, spec.num_speculative_tokens) == (
        "qwen-0.5b", [], "auto", "auto", 4)


def test_the_cpu_vllm_catalogue_is_valid():
    catalogue = load_catalogue(Path(__file__).parents[2] / "deploy" / "vllm" / "models.cpu.yaml")
    [model] = catalogue.models
    assert model.backend == "vllm" and model.base_url == "http://127.0.0.1:8000/v1"


def test_transcription_and_vision_entries_are_checked(tmp_path):
    base = {"id": "w", "base_url": "http://h/v1", "model": "whisper-1", "transcription": True}
    chat = {"id": "c", "base_url": "http://h/v1", "model": "m"}
    with pytest.raises(CatalogueError, match="transcription model, not a chat model"):
        load_catalogue(write(tmp_path, {"default_model": "w", "models": [base, chat]}))
    local = {"id": "l", "backend": "hf", "path": "/models/x", "vision": True}
    with pytest.raises(CatalogueError, match="backend hf is text-only"):
        load_catalogue(write(tmp_path, {"default_model": "l", "models": [local]}))
