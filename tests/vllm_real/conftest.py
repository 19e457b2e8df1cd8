"""Fixtures of the real-vLLM tier: the vLLM virtualenv, tiny models built offline, and real
servers shared by the tests (starting one costs ~50 s of the 2 cores)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import db  # noqa: F401  (the e2e database fixture, here too)
from tests.local_models import vllm_pair
from tests.vllm_real.servers import VllmServer

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TIER_TIMEOUT = 900  # seconds per test, servers' start-up included


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.vllm)
            item.add_marker(pytest.mark.timeout(TIER_TIMEOUT))


@pytest.fixture(scope="session")
def vllm_python() -> str:
    """The Python of the vLLM CPU virtualenv (created on first use by deploy/vllm/cpu-env.sh,
    then cached), or CHATMUX_VLLM_PYTHON."""
    given = os.environ.get("CHATMUX_VLLM_PYTHON")
    if given:
        return given
    done = subprocess.run([str(ROOT / "deploy" / "vllm" / "cpu-env.sh")], check=True,
                          capture_output=True, text=True, timeout=1800)
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def tiny_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(target dir, draft dir): a tiny Llama pair vLLM's CPU build serves (see vllm_pair)."""
    return vllm_pair(tmp_path_factory.mktemp("tiny-vllm"))


@pytest.fixture(scope="session")
def vllm_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("vllm-logs")


def started(server: VllmServer) -> Iterator[VllmServer]:
    server.start()
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def spec_server(vllm_python: str, tiny_pair: tuple[Path, Path],
                vllm_logs: Path) -> Iterator[VllmServer]:
    """The tiny target verified by its draft (k=3), max_model_len 4096, served as "tiny"."""
    target, draft = tiny_pair
    yield from started(VllmServer(vllm_python, target, "tiny", vllm_logs / "spec.log",
                                  draft=draft, k=3, max_model_len=4096))
