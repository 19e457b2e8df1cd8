"""Ray Serve LLM: the app config built from /addmodel, the dashboard client's read-modify-write
against a strict fake of Ray's REST API, status lines, and Ray's metric names."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from bot.admin_args import UsageError, ray_launch_request
from inference.pool.argv import LaunchRequest
from inference.ray.app_config import Replicas, path_problem, serve_app
from inference.ray.dashboard import RayDashboard, RayServeError
from inference.ray.status import one_line, progress
from inference.vllm_metrics import parse_ray_metrics
from tests.conftest import REDIS_URL
from tests.fakes.ray_dashboard import FakeRayDashboard, Invalid, validate

SERVE = "http://127.0.0.1:8000"


@pytest.fixture
async def fake() -> AsyncIterator[FakeRayDashboard]:
    dashboard = FakeRayDashboard()
    await dashboard.start()
    yield dashboard
    await dashboard.stop()


def app(model_id: str, target: str = "org/target", **kwargs: object) -> dict:
    request = LaunchRequest(model_id=model_id, target=target, draft="org/draft", k=3, **kwargs)
    return serve_app(request, Replicas(), "gpu")


def test_the_app_config_carries_the_launch_options_and_nothing_else():
    request, replicas, title = ray_launch_request("qwen", {
        "hf": ["Qwen/Qwen3-8B"], "draft": ["Qwen/Qwen3-0.6B"], "k": ["5"], "gpus": ["2"],
        "replicas": ["1-3"], "context": ["4096"], "title": ["Qwen"]})
    config = serve_app(request, replicas, "L4")
    validate({"applications": [config]})  # the fake's schema, as Ray's
    llm = config["args"]["llm_configs"][0]
    assert config["name"] == "qwen" and config["route_prefix"] == "/qwen"
    assert config["import_path"] == "ray.serve.llm:build_openai_app"
    assert llm["model_loading_config"] == {"model_id": "qwen", "model_source": "Qwen/Qwen3-8B"}
    assert llm["engine_kwargs"] == {
        "tensor_parallel_size": 2, "max_model_len": 4096,
        "speculative_config": {"method": "draft_model", "model": "Qwen/Qwen3-0.6B",
                               "num_speculative_tokens": 5}}
    assert llm["deployment_config"]["autoscaling_config"] == {"min_replicas": 1,
                                                              "max_replicas": 3}
    assert llm["accelerator_type"] == "L4" and title == "Qwen"

    cpu = serve_app(request, Replicas(2, 2), "cpu")
    assert cpu["args"]["llm_configs"][0]["accelerator_config"] == {"kind": "cpu"}
    assert cpu["args"]["llm_configs"][0]["deployment_config"]["num_replicas"] == 2
    assert cpu["args"]["ingress_deployment_config"] == {"ray_actor_options": {"num_cpus": 0}}
    validate({"applications": [cpu]})


@pytest.mark.parametrize("options, error", [
    ({"replicas": ["0"]}, "replicas must be"),
    ({"replicas": ["3-1"]}, "replicas must be"),
    ({"replicas": ["x"]}, "replicas= must be N or MIN-MAX"),
    ({"engine_args": ["--enforce-eager"]}, "unknown option engine_args="),
    ({"k": ["99"]}, "k= must be an integer"),
])
def test_ray_options_are_a_closed_checked_set(options, error):
    base = {"hf": ["org/t"], "draft": ["org/d"]}
    with pytest.raises(UsageError, match=error):
        ray_launch_request("m", {**base, **options})


def test_local_paths_only_under_the_models_directory():
    inside = LaunchRequest(model_id="m", target="/models/t", draft="/models/d")
    outside = LaunchRequest(model_id="m", target="/models/t", draft="/etc/d")
    assert path_problem(inside, "/models") is None
    assert "not under POOL_MODELS_DIR" in str(path_problem(outside, "/models"))
    assert "set POOL_MODELS_DIR" in str(path_problem(inside, None))
    assert path_problem(LaunchRequest(model_id="m", target="org/t"), None) is None


def test_a_bad_config_is_refused_by_the_fake_as_by_ray():
    config = app("a")
    config["args"]["llm_configs"][0]["engine_kwargs"]["enforce_eager"] = True
    with pytest.raises(Invalid, match="enforce_eager"):
        validate({"applications": [config]})


async def test_read_modify_write_keeps_the_other_apps_and_restarts_only_the_changed_one(fake):
    dashboard = RayDashboard(fake.url, SERVE)
    await dashboard.put_app(app("a"))
    await dashboard.put_app(app("b"))
    first_b = fake.apps["b"]
    await dashboard.put_app(app("a", target="org/other"))
    assert fake.live() == {"a", "b"}
    assert fake.apps["b"] is first_b  # unchanged: not redeployed
    assert fake.apps["a"].llm["model_loading_config"]["model_source"] == "org/other"
    assert fake.puts[0]["http_options"] == {"host": "127.0.0.1", "port": 8000}
    assert await dashboard.remove_app("a") is True
    assert fake.live() == {"b"}
    assert await dashboard.remove_app("a") is False
    assert fake.live() == {"b"}


async def test_a_concurrent_writer_that_drops_our_app_is_noticed_and_the_write_redone(fake):
    dashboard = RayDashboard(fake.url, SERVE)
    await dashboard.put_app(app("a"))
    fake.interfere_next = [app("a")]  # someone else's PUT, read before ours, lands after it
    await dashboard.put_app(app("b"))
    assert fake.live() == {"a", "b"}
    assert len(fake.puts) == 3


async def test_two_bot_processes_serialise_their_changes_through_a_redis_lock(fake):
    fake.put_delay = 0.2  # GET … PUT of one overlaps the other's without a lock
    lock = f"chatmux-test-{uuid.uuid4().hex[:8]}:ray:serve-config"
    redis_a, redis_b = Redis.from_url(REDIS_URL), Redis.from_url(REDIS_URL)
    try:
        one = RayDashboard(fake.url, SERVE, redis=redis_a, lock_name=lock)
        two = RayDashboard(fake.url, SERVE, redis=redis_b, lock_name=lock)
        await asyncio.gather(one.put_app(app("a")), two.put_app(app("b")))
        assert fake.live() == {"a", "b"}
        assert len(fake.puts) == 2  # neither had to redo its write
    finally:
        await redis_a.aclose()
        await redis_b.aclose()


async def test_token_auth_and_refusals_are_one_line(fake):
    fake.token = "s3cret-token"
    with pytest.raises(RayServeError, match="RAY_DASHBOARD_TOKEN_ENV"):
        await RayDashboard(fake.url, SERVE).app("a")
    dashboard = RayDashboard(fake.url, SERVE, token="s3cret-token")
    await dashboard.put_app(app("a"))
    bad = app("b")
    bad["args"]["llm_configs"][0]["engine_kwargs"]["enforce_eager"] = True
    with pytest.raises(RayServeError, match=r"answered PUT with 400: .*enforce_eager"):
        await dashboard.put_app(bad)
    with pytest.raises(RayServeError, match="did not answer"):
        await RayDashboard("http://127.0.0.1:9", SERVE).app("a")


async def test_status_goes_deploying_then_running_or_failed_with_the_exception_line(fake):
    fake.failing["org/missing"] = ("RuntimeError: Failed to create vLLM engine config: "
                                   "Repo id must be in the form 'namespace/repo_name'")
    fake.deploy_polls = 8  # GETs, the client's own included
    dashboard = RayDashboard(fake.url, SERVE)
    await dashboard.put_app(app("ok"))
    await dashboard.put_app(app("bad", target="org/missing"))
    seen = []
    for _ in range(10):
        ok, bad = progress(await dashboard.app("ok")), progress(await dashboard.app("bad"))
        seen.append(ok.phase)
        if ok.phase == "running" and bad.phase == "failed":
            break
    assert seen[0] == "deploying" and seen[-1] == "running"
    assert bad.phase == "failed" and bad.status == "DEPLOY_FAILED"
    assert bad.detail == fake.failing["org/missing"]
    assert progress(None).phase == "missing"


def test_one_line_takes_the_exception_and_cuts_it():
    assert one_line("Traceback…\n  File x\nValueError: bad\n\n") == "ValueError: bad"
    assert len(one_line("x" * 1000)) == 300
    assert one_line(None) == ""


def test_ray_metric_names_are_read_for_one_model_only():
    text = """# TYPE ray_vllm_spec_decode_num_drafts_total counter
ray_vllm_spec_decode_num_drafts_total{Component="core_worker",engine="0",model_name="tiny"} 8.0
ray_vllm_spec_decode_num_drafts_total{Component="core_worker",engine="1",model_name="tiny"} 2.0
ray_vllm_spec_decode_num_drafts_total{Component="core_worker",engine="0",model_name="big"} 50.0
ray_vllm_spec_decode_num_draft_tokens_total{engine="0",model_name="tiny"} 30.0
ray_vllm_spec_decode_num_accepted_tokens_total{engine="0",model_name="tiny"} 12.0
ray_vllm_num_requests_running{engine="0",model_name="tiny"} 1.0
"""
    stats = parse_ray_metrics(text, "tiny")
    assert (stats.spec_drafts, stats.spec_draft_tokens, stats.spec_accepted_tokens) == \
        (10.0, 30.0, 12.0)
    assert stats.running == 1
    # Ray's own answer without the model's counters (nothing counted yet): zeros.
    fresh = parse_ray_metrics(text, "other")
    assert (fresh.spec_drafts, fresh.spec_draft_tokens, fresh.spec_accepted_tokens) == \
        (0.0, 0.0, 0.0)
    assert not parse_ray_metrics("<html>oops</html>", "tiny").speculative
    assert not parse_ray_metrics("vllm:num_requests_running 1\n", "tiny").speculative


def test_ray_settings_and_the_dashboard_token_stays_secret(monkeypatch):
    from bot.settings import ConfigError, load_settings

    monkeypatch.setenv("MY_RAY_TOKEN", "tok-0123456789abcdef")
    settings = load_settings(pool="ray", ray_dashboard_url="http://head:8265",
                             ray_serve_url="http://head:8000",
                             ray_dashboard_token_env="MY_RAY_TOKEN")
    assert settings.ray_dashboard_token() == "tok-0123456789abcdef"
    assert "tok-0123456789abcdef" in settings.secret_values()
    with pytest.raises(ConfigError, match="POOL"):
        load_settings(pool="k8s")
    with pytest.raises(ConfigError, match="RAY_DASHBOARD_URL"):
        load_settings(ray_dashboard_url="head:8265")
